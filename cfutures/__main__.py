"""python -m cfutures: python, with concurrent.futures replaced by cfutures.

    python -m cfutures prog.py [args]     run a script (or a directory or zip
                                          file with a __main__.py)
    python -m cfutures -m module [args]   run a library module as a script
    python -m cfutures -c command [args]  run a program passed as a string
    python -m cfutures - [args]           read the program from stdin
    python -m cfutures                    a console (or stdin, when not a tty)

    --process-pool=dask://HOST:PORT       (before the program) its
    --process-pool=dask://local           ProcessPoolExecutor runs the calls
                                          on a Dask cluster: the scheduler
                                          at HOST:PORT, or one started on
                                          this machine; the environment
                                          variable CFUTURES_PROCESS_POOL
                                          takes the same values

The program's `import concurrent.futures` (and its submodules _base,
thread, process) gets cfutures; everything else is as if it had been run
with plain `python`: sys.argv and sys.path[0] are set as python sets them,
a missing script gives python's one-line message and exit status 2, and a
traceback shows the program's frames only.  Worker processes started by
multiprocessing with the spawn or forkserver method start the same way, so
they see cfutures too.
"""
import os
import sys

USAGE = __doc__.split("\n\n")[0].replace("python -m cfutures: ", "usage: ", 1)
HELP = __doc__


def install(process_pool=None):
    """Make `concurrent.futures` and its submodules resolve to cfutures, in
    this process and in the processes multiprocessing spawns from it.
    With `process_pool` (dask://...), ProcessPoolExecutor is a
    ClusterExecutor on that cluster (cfutures.distributed)."""
    import concurrent
    import cfutures
    import cfutures._base
    import cfutures.process
    import cfutures.thread
    sys.modules.update({
        "concurrent.futures": cfutures,
        "concurrent.futures._base": cfutures._base,
        "concurrent.futures.thread": cfutures.thread,
        "concurrent.futures.process": cfutures.process,
    })
    concurrent.futures = cfutures
    _launch_children_with_cfutures()
    if process_pool is not None:
        from cfutures import distributed
        pool = distributed.process_pool_class(process_pool)
        cfutures.ProcessPoolExecutor = cfutures.process.ProcessPoolExecutor = pool


def _launch_children_with_cfutures():
    # spawn and forkserver start `python <interpreter flags> -c <bootstrap>`:
    # `-m cfutures` after the flags makes that `python -m cfutures -c ...`.
    from multiprocessing import util
    flags = util._args_from_interpreter_flags
    if getattr(flags, "cfutures", False):
        return

    def args_from_interpreter_flags():
        return flags() + ["-m", "cfutures"]

    args_from_interpreter_flags.cfutures = True
    util._args_from_interpreter_flags = args_from_interpreter_flags


def _program_name():
    """argv[0] of this interpreter as it was typed, as python's own
    messages show it."""
    orig_argv = getattr(sys, "orig_argv", None)
    if orig_argv:
        return orig_argv[0]
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return os.fsdecode(f.read().split(b"\0")[0])
    except OSError:
        return sys.executable


def _fail(message, status):
    print("%s: %s" % (_program_name(), message), file=sys.stderr)
    return status


def _trimmed(tb):
    """The traceback from the program's first frame on: this file's and
    runpy's frames are not the program's."""
    launcher = os.path.abspath(__file__)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not (filename == launcher or filename.endswith(os.sep + "runpy.py")
                or filename.startswith("<frozen runpy")):
            break
        tb = tb.tb_next
    return tb


# Set when a KeyboardInterrupt escaped the program: the process then ends
# killed by SIGINT, as python's does, once the exit's work is done.
_interrupted = False


def _run(run):
    """Run the program; an exception that escapes it is reported as python
    reports it (KeyboardInterrupt: killed by SIGINT after the exit's work,
    as python exits)."""
    global _interrupted
    try:
        run()
    except SystemExit:
        raise
    except BaseException as exc:
        import traceback
        traceback.print_exception(type(exc), exc, _trimmed(exc.__traceback__))
        sys.stderr.flush()
        _interrupted = isinstance(exc, KeyboardInterrupt)
        return 1
    return 0


def _die_of_sigint_if_interrupted():
    """The first atexit hook registered, so the last to run: python, after
    an unhandled KeyboardInterrupt, first joins the threads and runs every
    atexit hook (a pool waiting for its tasks, the program's own hooks),
    and only then kills itself with SIGINT, so that its parent (a shell)
    sees the interrupt.  Only the interpreter's teardown after atexit
    (collecting the modules' objects) is left out here."""
    if _interrupted:
        import signal
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (AttributeError, OSError, ValueError):
                pass
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)


def _new_main(**attrs):
    """A fresh __main__ module, with what python puts in it for the way the
    program came (`__file__` for a script and for stdin, not for -c)."""
    import importlib.machinery
    import types
    main = types.ModuleType("__main__")
    main.__builtins__ = __builtins__
    main.__spec__ = None
    main.__loader__ = importlib.machinery.BuiltinImporter
    for name, value in attrs.items():
        setattr(main, name, value)
    sys.modules["__main__"] = main
    return main


def _run_code(source, filename, argv, **attrs):
    """-c, - and stdin: the program runs in a fresh __main__ module."""
    sys.argv = argv
    sys.path[0] = ""
    main = _new_main(**attrs)
    return _run(lambda: exec(compile(source, filename, "exec"), main.__dict__))


def _run_script(path, args):
    """A script runs in a fresh __main__ module, its directory first on the
    path; a directory or zip file runs its __main__ module, the directory
    or zip file first on the path (made absolute, as python does)."""
    import runpy
    if not os.path.exists(path):
        return _fail("can't open file %r: [Errno 2] No such file or directory"
                     % os.path.abspath(path), 2)
    sys.argv = [path] + args
    if os.path.isdir(path) or _is_zip(path):
        if not _has_main(path):
            return _fail("can't find '__main__' module in %r" % path, 1)
        sys.path[0] = os.path.abspath(path)
        _new_main()
        return _run(lambda: runpy._run_module_as_main("__main__", alter_argv=False))
    import importlib.machinery
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    filename = os.path.abspath(path)    # __file__ and tracebacks, as python
    with open(path, "rb") as f:
        source = f.read()
    main = _new_main(__file__=filename, __cached__=None,
                     __loader__=importlib.machinery.SourceFileLoader("__main__", filename))
    return _run(lambda: exec(compile(source, filename, "exec"), main.__dict__))


def _is_zip(path):
    import zipfile
    return os.path.isfile(path) and zipfile.is_zipfile(path)


def _has_main(path):
    if os.path.isdir(path):
        return any(os.path.exists(os.path.join(path, "__main__" + ext))
                   for ext in (".py", ".pyc"))
    import zipfile
    with zipfile.ZipFile(path) as z:
        return any(n in ("__main__.py", "__main__.pyc") for n in z.namelist())


def _run_module(name, args):
    """-m: what python itself calls (its errors and exit status included),
    in a fresh __main__ module rather than this one."""
    import runpy
    sys.argv = [name] + args            # runpy puts the module's path first
    _new_main()
    return _run(lambda: runpy._run_module_as_main(name, alter_argv=True))


def _process_pool_option(argv):
    """(--process-pool's value or CFUTURES_PROCESS_POOL's or None, the
    arguments after the option, an error message or None).  The variable
    is taken out of the environment: the processes the program starts
    (Dask's workers among them) run their own process pools."""
    value = os.environ.pop("CFUTURES_PROCESS_POOL", None) or None
    if argv and argv[0].startswith("--process-pool"):
        option, equals, value = argv[0].partition("=")
        argv = argv[1:]
        if option != "--process-pool":
            return None, argv, "unknown option %s\n%s" % (option, USAGE)
        if not equals:
            if not argv:
                return None, argv, "Argument expected for the --process-pool option\n" + USAGE
            value, argv = argv[0], argv[1:]
    if value is None:
        return None, argv, None
    if not value.startswith("dask://") or value == "dask://":
        return None, argv, ("--process-pool: expected dask://HOST:PORT or dask://local, "
                            "not %r" % value)
    import importlib.util
    if importlib.util.find_spec("distributed") is None:
        from cfutures.distributed import INSTALL_HINT
        return None, argv, "--process-pool: " + INSTALL_HINT
    return value, argv, None


def main(argv=None):
    import atexit
    atexit.register(_die_of_sigint_if_interrupted)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(HELP)
        return 0
    process_pool, argv, error = _process_pool_option(argv)
    if error is not None:
        return _fail(error, 2)
    install(process_pool)
    if not argv:
        if sys.stdin.isatty():
            import code
            sys.argv = [""]
            return _run(lambda: code.interact(local={"__name__": "__main__"}))
        return _run_code(sys.stdin.read(), "<stdin>", [""], __file__="<stdin>",
                         __cached__=None)
    first, rest = argv[0], argv[1:]
    if first == "-c":
        if not rest:
            return _fail("Argument expected for the -c option\n" + USAGE, 2)
        return _run_code(rest[0], "<string>", ["-c"] + rest[1:])
    if first == "-m":
        if not rest:
            return _fail("Argument expected for the -m option\n" + USAGE, 2)
        return _run_module(rest[0], rest[1:])
    if first == "-":
        return _run_code(sys.stdin.read(), "<stdin>", ["-"] + rest, __file__="<stdin>",
                         __cached__=None)
    if first.startswith("-"):
        return _fail("unknown option %s\n%s" % (first, USAGE), 2)
    return _run_script(first, rest)


if __name__ == "__main__":
    sys.exit(main())
