"""PyTorch adapter: AGP pruning of a ``torch.nn.Module``'s ``nn.Linear`` weights.

A thin wrapper around :class:`sparsemac.sw.prune.Pruner`. PyTorch is optional and imported
only when a :class:`TorchPruner` is made (``pip install sparsemac[torch]``).

The module is not re-parametrised (unlike ``torch.nn.utils.prune``): each weight stays a plain
``Parameter`` whose pruned entries are zero, so ``module.state_dict()`` keeps its keys and
holds the pruned weights. The masks live in the pruner; save :meth:`TorchPruner.state_dict`
with the checkpoint to resume pruning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .prune import Pruner

if TYPE_CHECKING:
    import torch

__all__ = ["TorchPruner"]


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "sparsemac.sw.torch_prune needs PyTorch, which is not installed: "
            "pip install sparsemac[torch]") from error
    return torch


class TorchPruner:
    """Prune the ``nn.Linear`` weights of a PyTorch module on an AGP schedule.

    Call :meth:`step` from the training loop after every ``optimizer.step()``. On mask update
    steps it recomputes the masks from the current weights (see
    :class:`~sparsemac.sw.prune.Pruner`); on every step, once masks exist, it zeroes the
    pruned weights again under ``torch.no_grad()``, so what the optimizer moved is put back to
    zero before the next forward pass.

    Parameters
    ----------
    module : torch.nn.Module
        The model. Its weights are modified in place.
    initial_sparsity, final_sparsity, begin_step, end_step, frequency
        The AGP schedule; see :class:`~sparsemac.sw.prune.AGPSchedule`.
    scope : {"layer", "global", "layerwise_constant"}
        See :class:`~sparsemac.sw.prune.Pruner`.
    layers : iterable of str, optional
        Names of the ``nn.Linear`` submodules to prune, as ``module.named_modules()`` gives
        them (``"fc1"``, ``"encoder.0"``); by default every ``nn.Linear``, in module order. The
        masks are keyed by parameter name (``"fc1.weight"``).

    Raises
    ------
    ImportError
        If PyTorch is not installed.
    ValueError
        If the schedule or scope is invalid, a name is unknown, repeated or not an
        ``nn.Linear``, or there is nothing to prune.
    """

    def __init__(self, module: torch.nn.Module, *, initial_sparsity: float = 0.0,
                 final_sparsity: float, begin_step: int, end_step: int, frequency: int,
                 scope: str = "layer", layers: Iterable[str] | None = None) -> None:
        torch = _import_torch()
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, not {type(module).__name__}")
        modules = dict(module.named_modules())
        if layers is None:
            names = [name for name, m in modules.items() if isinstance(m, torch.nn.Linear)]
            if not names:
                raise ValueError("The module has no nn.Linear layers to prune")
        else:
            names = list(layers)
            if not names:
                raise ValueError("layers is empty; name at least one nn.Linear layer to prune")
            if len(set(names)) != len(names):
                raise ValueError(f"Layer names must be unique, not {names!r}")
            linear = [name for name, m in modules.items() if isinstance(m, torch.nn.Linear)]
            for name in names:
                if not isinstance(modules.get(name), torch.nn.Linear):
                    raise ValueError(f"{name!r} is not an nn.Linear layer of the module; its "
                                     f"nn.Linear layers are {linear!r}")
        self._params = {(f"{name}.weight" if name else "weight"): modules[name].weight
                        for name in names}
        self._pruner = Pruner(initial_sparsity=initial_sparsity, final_sparsity=final_sparsity,
                              begin_step=begin_step, end_step=end_step, frequency=frequency,
                              scope=scope)
        self._pruned: dict[str, torch.Tensor] | None = None

    @property
    def pruner(self) -> Pruner:
        """The NumPy :class:`~sparsemac.sw.prune.Pruner` doing the work."""
        return self._pruner

    @property
    def history(self) -> list[tuple[int, float]]:
        """``(step, sparsity)`` after every mask update."""
        return self._pruner.history

    @property
    def sparsity(self) -> float:
        """The fraction of the pruned layers' weights currently pruned."""
        return self._pruner.sparsity

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """The current masks as boolean tensors (``True`` keeps), keyed by parameter name."""
        torch = _import_torch()
        return {name: torch.from_numpy(mask.copy())
                for name, mask in self._pruner.masks.items()}

    def step(self, step: int) -> None:
        """Advance to training ``step``: update the masks if it is an update step, then apply them.

        Raises
        ------
        ValueError
            If a weight holds NaN or infinity on an update step.
        """
        torch = _import_torch()
        with torch.no_grad():
            if self._pruner.is_update_step(step):
                # float64 stays float64; float16 and bfloat16 are ranked as float32.
                weights = {name: p.detach().to("cpu", torch.float64 if p.dtype == torch.float64
                                               else torch.float32).numpy()
                           for name, p in self._params.items()}
                self._set_masks(self._pruner.step(weights, step))
            self.apply()

    def apply(self) -> None:
        """Zero the pruned weights now (nothing before the first mask update)."""
        if self._pruned is None:
            return
        torch = _import_torch()
        with torch.no_grad():
            for name, p in self._params.items():
                p.masked_fill_(self._pruned[name], 0)

    def _set_masks(self, masks: Mapping[str, np.ndarray]) -> None:
        torch = _import_torch()
        self._pruned = {name: torch.from_numpy(~masks[name]).to(p.device)
                        for name, p in self._params.items()}

    def state_dict(self) -> dict[str, Any]:
        """Masks (boolean tensors) and history; loadable by ``torch.load(weights_only=True)``."""
        return {"masks": self.masks, "history": list(self._pruner.history)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned and zero the pruned weights.

        Raises
        ------
        ValueError
            If the masks do not match the pruned parameters' names and shapes.
        """
        masks = {name: np.asarray(mask.cpu().numpy() if hasattr(mask, "cpu") else mask)
                 for name, mask in state["masks"].items()}
        if not masks:  # saved before the first mask update
            self._pruner.load_state_dict({"masks": {}, "history": state["history"]})
            self._pruned = None
            return
        if set(masks) != set(self._params):
            raise ValueError(f"The state has masks for {sorted(masks)!r}, this pruner prunes "
                             f"{sorted(self._params)!r}")
        for name, p in self._params.items():
            if masks[name].shape != tuple(p.shape):
                raise ValueError(f"Mask of {name!r} has shape {masks[name].shape}, the weight "
                                 f"{tuple(p.shape)}")
        self._pruner.load_state_dict({"masks": {name: masks[name] for name in self._params},
                                      "history": state["history"]})
        self._set_masks(self._pruner.masks)
        self.apply()
