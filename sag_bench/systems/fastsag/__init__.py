"""FastSAG (Chen et al., IJCAI 2024) and its four ablations: one model, configured by presets and variants."""
