"""Model compression: knowledge distillation, pruning and quantization.

Taught in chapter 20 (Model compression).
"""
from lmcourse.compress.distill import (TinyBertLoss, bert_internals, kd_loss, pkd_layer_map, pkd_loss,
                                       soft_targets)
from lmcourse.compress.prune import (attention_layers, drop_layers, head_importance, least_important_heads,
                                     magnitude_prune, prunable_linears, prune_heads, sparsity)
from lmcourse.compress.quantize import (Int8Linear, QuantLinear, SplitBinaryLinear, UnsupportedLayerError,
                                        binarize, model_size_bytes, quantize_activations, quantize_int8,
                                        quantize_layer, quantize_model, ternarize,
                                        torch_dynamic_int8)

__all__ = ["Int8Linear", "QuantLinear", "SplitBinaryLinear", "TinyBertLoss", "UnsupportedLayerError",
           "attention_layers", "bert_internals", "binarize", "drop_layers", "head_importance", "kd_loss",
           "least_important_heads", "magnitude_prune", "model_size_bytes", "pkd_layer_map", "pkd_loss",
           "prunable_linears", "prune_heads", "quantize_activations", "quantize_int8", "quantize_layer",
           "quantize_model", "soft_targets", "sparsity", "ternarize", "torch_dynamic_int8"]
