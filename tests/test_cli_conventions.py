"""One command line: flags over the --config YAML over the defaults for every command with a config; one set
of conventions (--out, --device with one default, --no-progress, --data-dir, --version); help without markup."""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path

import pytest

from babymerge.cli import build_parser, main
from babymerge.cli._flags import config_from_args

# where an option is meaningful: the commands that must have it
OUT = {"convert", "demo", "eval", "features", "fold", "gram", "init", "merge", "plot-loss", "sweep", "tokenizer"}
OUT |= {"diagnose", "train"}
DEVICE = {"demo", "diagnose", "eval", "features", "sweep", "train"}
PROGRESS = {"demo", "diagnose", "eval", "features", "merge", "sweep", "tokenizer", "train"}
DATA_DIR = {"data", "demo", "eval", "sweep"}
# per command with a config: a minimal command line (its required values), and a field with its default, a
# YAML value and a flag value
CONFIGURED = {
    "demo": ([], ("seed", 0, 5, 7)),
    "diagnose": (["t", "m", "--base", "b", "--out", "o"], ("seed", 0, 5, 7)),
    "eval": (["ckpt", "--tasks", "t", "--out", "o"], ("limit", None, 5, 7)),
    "features": (["imgs", "--out", "f.safetensors"], ("seed", 0, 5, 7)),
    "init": (["--tokenizer", "tok", "--out", "o"], ("seed", 0, 5, 7)),
    "sweep": (["--out", "o", "--text", "t", "--multimodal", "m"], ("seed", 0, 5, 7)),
    "tokenizer": (["text", "--out", "o"], ("vocab_size", 16000, 5000, 7000)),
    "train": (["--mode", "text", "--init", "i", "--text", "t", "--out", "o"], ("seed", 0, 5, 7)),
}


def subparsers() -> dict[str, argparse.ArgumentParser]:
    return dict(build_parser()._subparsers._group_actions[0].choices)


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def config_of(args: argparse.Namespace):
    """The config as the command builds it (the sweep's store defaults into --out)."""
    return config_from_args(args, **({"store": Path(args.out) / "results.jsonl"} if args.command == "sweep" else {}))


def test_every_command_follows_the_conventions():
    commands = subparsers()
    configured = {name for name, parser in commands.items() if parser.get_default("config_model")}
    assert configured == set(CONFIGURED)
    for name, parser in commands.items():
        flags = options(parser)
        for option, wanted in (("--out", OUT), ("--device", DEVICE), ("--no-progress", PROGRESS)):
            assert (option in flags) == (name in wanted), f"babymerge {name}: {option}"
        assert ("--data-dir" in flags) == (name in DATA_DIR), f"babymerge {name}: --data-dir"
        assert ("--config" in flags) == (name in configured), f"babymerge {name}: --config"
        assert "`" not in parser.format_help(), f"babymerge {name} --help has markup"
    for name in DEVICE:  # one default everywhere
        args = parse([name, *CONFIGURED[name][0]])
        assert config_of(args).device == "cpu", name


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"babymerge {version('babymerge')}\n"


@pytest.mark.parametrize("command", sorted(CONFIGURED))
def test_flag_over_yaml_over_default(command, tmp_path):
    required, (field, default, in_yaml, as_flag) = CONFIGURED[command]
    assert getattr(config_of(parse([command, *required])), field) == default

    yaml_file = tmp_path / "config.yaml"
    yaml_file.write_text(f"{field}: {in_yaml}\n")
    from_yaml = parse([command, *required, "--config", str(yaml_file)])
    assert getattr(config_of(from_yaml), field) == in_yaml
    flag = f"--{field.replace('_', '-')}"
    given = parse([command, *required, "--config", str(yaml_file), flag, str(as_flag)])
    assert getattr(config_of(given), field) == as_flag


def test_yaml_paths_resolve_against_its_folder_and_dicts_merge(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "sweep.yaml").write_text(
        "text: runs/text\nmultimodal: runs/mm\nmethod_parameters: {ties: {density: 0.3, lambda: 1.0}}\n"
    )
    argv = ["sweep", "--out", "out", "--config", str(folder / "sweep.yaml"), "--multimodal", "elsewhere"]
    args = parse([*argv, "--param", "ties.density=0.7"])
    from babymerge.cli.sweep import _param  # the --param values as the command gathers them

    method, name, value = _param("ties.density=0.7")
    config = config_from_args(args, given={"method_parameters": {method: {name: value}}}, store=Path("out/r.jsonl"))
    assert config.text == folder / "runs" / "text"  # from the file: against its folder
    assert config.multimodal == Path("elsewhere")  # a flag: as given
    assert config.method_parameters == {"ties": {"density": 0.7, "lambda": 1.0}}
    assert config.store == Path("out/r.jsonl")  # the command's own default, under the file's values
    (folder / "sweep.yaml").write_text("text: t\nmultimodal: m\nstore: s.jsonl\n")
    assert config_from_args(parse(argv), store=Path("out/r.jsonl")).store == folder / "s.jsonl"


def test_missing_required_value_names_flag_and_key(tmp_path, capsys):
    assert main(["train", "--mode", "text", "--text", "t", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err == "babymerge train: error: --init is required (or `init:` in the --config file)\n"


def test_old_spellings_still_parse(tmp_path, capsys):
    assert parse(["train", "--quiet"]).progress is False
    assert parse(["eval", "m", "--tasks", "t", "--output-path", "r"]).out == "r"
    merge = parse(["merge", "recipe.yml", "merged"])
    assert (merge.out, merge.old_out) == (None, "merged")
    assert main(["merge", "recipe.yml", "merged", "--out", str(tmp_path / "x")]) == 2
    assert "the output is given twice" in capsys.readouterr().err
