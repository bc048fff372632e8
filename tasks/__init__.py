"""One module per tab; each exposes `build(registry) -> gr.Blocks`."""
