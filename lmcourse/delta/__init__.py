"""Delta tuning: train a small delta, keep the pretrained backbone frozen.

Taught in chapter 12 (Delta tuning). Works on any ``nn.Module`` (lmcourse's models and
Hugging Face ones); imports neither ``lmcourse.prompt`` nor ``lmcourse.systems``.

* addition-based: ``add_adapters`` (sequential / parallel), ``LadderSideNetwork``, ``PrefixTuning``;
* specification-based: ``bitfit``;
* reparameterization-based: ``IntrinsicDimension``, ``add_lora`` / ``merge_lora`` / ``unmerge_lora``;
* the unified view and ``StructureSearch``;
* common: ``freeze``, ``count_parameters``, ``delta_state_dict``, ``save_delta``, ``load_delta``.
"""
from .adapters import ParallelAdapter, SequentialAdapter, add_adapters
from .bitfit import bitfit
from .core import (DeltaError, count_parameters, delta_state_dict, find_modules, fingerprint, freeze, load_delta,
                   remove_deltas, save_delta)
from .intrinsic import IntrinsicDimension, d_at
from .ladder import LadderSideNetwork
from .lora import LoRA, add_lora, loras, merge_and_unload, merge_lora, unmerge_lora
from .prefix import PrefixTuning
from .unified import UNIFIED_VIEW, StructureSearch, lora_as_parallel_adapter, prefix_as_interpolation

__all__ = ["DeltaError", "IntrinsicDimension", "LadderSideNetwork", "LoRA", "ParallelAdapter", "PrefixTuning",
           "SequentialAdapter", "StructureSearch", "UNIFIED_VIEW", "add_adapters", "add_lora", "bitfit",
           "count_parameters", "d_at", "delta_state_dict", "find_modules", "fingerprint", "freeze", "load_delta",
           "lora_as_parallel_adapter", "loras", "merge_and_unload", "merge_lora", "prefix_as_interpolation",
           "remove_deltas", "save_delta", "unmerge_lora"]
