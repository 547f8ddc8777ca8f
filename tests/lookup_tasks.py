"""A module whose attribute look-up can be interrupted, as Ctrl-C would
(test_process_pickler.py): `target` is pickled by the name `looked_up`,
which the module's __getattr__ gives -- or, once after interrupt_next(),
answers with a KeyboardInterrupt."""

_interrupt = False


def target(x):
    return ("target", x)


target.__qualname__ = "looked_up"


def interrupt_next():
    """The next look-up of `looked_up` raises KeyboardInterrupt, once."""
    global _interrupt
    _interrupt = True


def __getattr__(name):
    global _interrupt
    if name == "looked_up":
        if _interrupt:
            _interrupt = False
            raise KeyboardInterrupt("while looked up")
        return target
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
