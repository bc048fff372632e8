"""Speech, shared by `train/` and the app: audio in (`audio`, bounded decoding in `audio_files`,
arrays and rates in `audio_arrays`), CTC vocabulary and decoding (`ctc`), the heads on a speech
encoder (`heads`, `padding`), transcription of any length (`long_audio`), the 12 keywords and
spotting over time (`keywords`, `spotting`), and the questions asked of a speech checkpoint's
per-example results (`error_analysis`)."""
