"""The local Gradio demo: VIG and every VIC step for one image, side by side for up to two models.

The logic (settings, loading, generation, display, saving) is plain Python and needs no browser; `app.py` only
wires it to Gradio, and `vigc.cli.demo` (`vigc demo`, `python vigc_demo.py`) parses the command line.
"""
