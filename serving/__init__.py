"""The web server around the tabs: launch and the command line (`server`), Gradio's sessions
built on demand (`sessions`), limits per request and per client (`upload_guard`, `clients`,
`live_places`), visitors' files decoded in worker processes (`audio_worker`), and scratch folders
removed at exit (`scratch`)."""
