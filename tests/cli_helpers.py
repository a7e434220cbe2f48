"""`cl-course` in the test's own process: the real `main`, without a new interpreter's imports (seconds a call)."""
import contextlib
import io


def run_main(*args, stdout: bool = False) -> tuple:
    "`cl-course ...` in this process: exit status and stderr (and stdout if asked)."
    from cl_course.cli import main
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try: code = main([str(a) for a in args])
        except SystemExit as e: code = e.code
    return (code, err.getvalue(), out.getvalue()) if stdout else (code, err.getvalue())


def one_line_of(err: str, prefix: str = "cl-course") -> str:
    "The single line a failed command printed on stderr, starting with `prefix` and with no traceback (fails the test otherwise)."
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), err
    assert "Traceback" not in err
    return lines[0]
