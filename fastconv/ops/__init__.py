"""The differentiable ops, one file per group; ``fastconv.functional`` is their public face."""
