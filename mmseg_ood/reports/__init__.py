"""Reports: markdown tables, JSON results files and figures of the tools'
results (``results.json``, robustness, meta classification, seed spreads,
training logs)."""
