"""The command line as a whole."""

import pytest

from convolve.cli import main


@pytest.mark.parametrize(("argv", "line"), [
    (["explain", "--input-shape", "3,3,3", "--weight-shape", "1,1,3,3", "--groups", "x"],
     "convolve explain: error: argument --groups: invalid int value: 'x' "
     "(see convolve explain --help)\n"),
    (["explain"],
     "convolve explain: error: the following arguments are required: --input-shape, "
     "--weight-shape (see convolve explain --help)\n"),
])
def test_usage_errors_are_one_line_with_exit_code_2(capsys, argv, line):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == line


def test_an_unknown_command_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("convolve: error: argument COMMAND: invalid choice: 'nope' (choose "
                          "from 'explain', ")
    assert err.endswith(") (see convolve --help)\n") and err.count("\n") == 1


def test_running_out_of_memory_is_one_line(capsys, monkeypatch):
    from convolve import models

    def huge(*args, **kwargs):
        raise MemoryError("Unable to allocate 62.6 GiB for an array with shape (84, 100000000)")

    monkeypatch.setattr(models, "get_model", huge)
    assert main(["summary", "--num-classes", "100000000"]) == 2
    assert capsys.readouterr().err == (
        "convolve summary: error: out of memory: Unable to allocate 62.6 GiB for an array "
        "with shape (84, 100000000)\n")
