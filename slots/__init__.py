"""Model slots: which model each tab serves (`table`), where it comes from (a local checkpoint,
an environment variable, the hub: `sources`, `hub`), how it loads (`loading`; ONNX Runtime int8
on a CPU: `onnx_serving`), one slot's life and Reload (`slot`), all of them
(`registry`), and what a slot that cannot serve says (`errors`). No Gradio here."""
