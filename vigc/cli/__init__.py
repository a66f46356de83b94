"""The command line: ``vigc COMMAND`` (`vigc.cli.main`), one module per command, each importing its heavy
modules only when it runs. The top layer: it may import anything in the package, and nothing imports it (but the
``__main__`` blocks of modules kept runnable with ``python -m``)."""
