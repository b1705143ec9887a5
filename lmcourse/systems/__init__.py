"""Training big models: memory, collectives, data/tensor/pipeline parallelism, ZeRO, precision.

Everything here runs on ``torch.distributed``: gloo on CPUs, NCCL on GPUs. Chapters start
workers with ``launch`` (workers must live in this package: a function defined in a
notebook cannot be sent to a spawned process); the training entry points also run under
``torchrun`` on many GPUs or nodes, unchanged.
"""
from lmcourse.systems.launch import LaunchError, free_port, launch, worker_setup

__all__ = ["LaunchError", "free_port", "launch", "worker_setup"]
