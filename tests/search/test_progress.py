"""The progress line's writer: rewritten in place on a terminal; redirected,
one line per interval and the last one at the end, so the output's length
does not grow with the sweep's duration."""

import io

from scenetune.search.progress import LineWriter


def test_redirected_lines_come_once_an_interval_and_the_last_at_the_end():
    out = io.StringIO()
    writer = LineWriter(out, every=3600, terminal=False)
    for done in range(1, 101):
        writer.update(f"trials: {done}/100 done")
    writer.finish()
    assert out.getvalue().splitlines() == ["trials: 1/100 done", "trials: 100/100 done"]


def test_on_a_terminal_the_line_is_rewritten_in_place():
    out = io.StringIO()
    writer = LineWriter(out, terminal=True)
    writer.update("trials: 1/2 done")
    writer.update("trials: 2/2 done")
    writer.finish("trials: 2/2 done; best 0.9")
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\r" + "trials: 2/2 done; best 0.9" + "\x1b[K\n")


def test_the_writer_pickles_without_its_stream():
    import pickle

    writer = LineWriter()  # sys.stderr, looked up when a line is written: Ray Tune pickles its callbacks
    assert pickle.loads(pickle.dumps(writer)).stream is not None
