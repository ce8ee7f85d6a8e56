"""Serving: the realtime speech-to-speech server (``app``, ``session``, ``response``,
``scheduler``, ``vad``, ``synth``, ``protocol``, ``client``; docs/serving.md) and the Gradio
demo (``gradio_app``)."""
