"""Training big models: memory, collectives, data/tensor/pipeline parallelism, ZeRO, precision.

Everything here runs on ``torch.distributed``: gloo on CPUs, NCCL on GPUs. Chapters start
workers with ``launch`` (workers must live in this package: a function defined in a
notebook cannot be sent to a spawned process); the training entry points also run under
``torchrun`` on many GPUs or nodes, unchanged.
"""
from lmcourse.systems.collectives import CollectiveError, ring_all_gather, ring_all_reduce, ring_reduce_scatter
from lmcourse.systems.data_parallel import DDP, UnusedParameterError, parameter_server_step
from lmcourse.systems.launch import LaunchError, free_port, launch, worker_setup
from lmcourse.systems.memory import Memory, measure_training, training_memory
from lmcourse.systems.pipeline import bubble_formula, gpipe_step, split_layers
from lmcourse.systems.tensor_parallel import ColumnParallelLinear, ParallelMLP, ParallelSelfAttention, RowParallelLinear
from lmcourse.systems.zero import ZeroAdam, zero_memory_formula

__all__ = ["DDP", "CollectiveError", "LaunchError", "Memory", "UnusedParameterError", "free_port", "launch",
           "measure_training", "parameter_server_step", "ring_all_gather", "ring_all_reduce", "ring_reduce_scatter",
           "training_memory", "worker_setup", "bubble_formula", "gpipe_step", "split_layers", "ColumnParallelLinear",
           "ParallelMLP", "ParallelSelfAttention", "RowParallelLinear", "ZeroAdam", "zero_memory_formula"]
