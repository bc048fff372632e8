"""The Gradio page. One module per tab, each exposing `build(registry) -> gr.Blocks`: `asr`,
`kws`, `qa`, `models`. Beside them, what the tabs share: `common` (status cards, user errors),
`live` (the Live streams' wiring), `error_views`, `qa_panels`, `qa_explorer`, `plots`, and
`page` (theme, stylesheet, scripts)."""
