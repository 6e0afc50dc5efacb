"""Host toolchain: pruning, quantization, the memory format, the golden model.

Host code only: NumPy, never Amaranth. The memory format (:mod:`.format`, :mod:`.container`)
and the numerics (:mod:`.numerics`) are the contract that ``hw/`` and ``sim/`` import.
"""

from .container import load_image, save_image
from .footprint import ModelFootprint, LayerFootprint, footprint
from .format import (ImageFormatError, LayerImage, ModelImage, pack_layer, pack_model,
                     unpack_layer, unpack_model)
from .golden import EngineTiming, GoldenResult, run_golden
from .model_io import DenseLayer, DenseModel, ModelFileError, load_model, model_from_arrays, save_model
from .prune import (AGPSchedule, LayerwiseConstantSchedule, Pruner, agp_sparsity,
                    global_magnitude_masks, imp_sparsities, is_mask_update_step,
                    iterative_magnitude_pruning, magnitude_mask)
from .quantize import QuantLayer, QuantModel, dequantize_outputs, quantize_activations, quantize_model

__all__ = [
    # model files
    "DenseLayer", "DenseModel", "ModelFileError", "load_model", "save_model", "model_from_arrays",
    # pruning
    "agp_sparsity", "is_mask_update_step", "AGPSchedule", "LayerwiseConstantSchedule",
    "magnitude_mask", "global_magnitude_masks", "imp_sparsities", "iterative_magnitude_pruning",
    "Pruner",
    # quantization
    "QuantLayer", "QuantModel", "quantize_model", "quantize_activations", "dequantize_outputs",
    # the memory format
    "LayerImage", "ModelImage", "ImageFormatError", "pack_layer", "pack_model",
    "unpack_layer", "unpack_model", "save_image", "load_image",
    # reports and the golden model
    "footprint", "ModelFootprint", "LayerFootprint", "EngineTiming", "GoldenResult", "run_golden",
]
