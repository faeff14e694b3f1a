import pytest

from awsaa import config as C
from awsaa.config import ConfigError, SearchConfig, TrainConfig

BASE = "model: wrn10_1\ndataset: fashion_mnist\nepochs: 2\nbatch_size: 64\n"


def load(tmp_path, text, **overrides):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return C.load(TrainConfig, p, overrides)


def test_every_shipped_train_config_loads():
    import glob

    files = sorted(glob.glob("configs/train/*.yaml"))
    assert len(files) >= 10
    for f in files:
        cfg = C.load(TrainConfig, f)
        assert cfg.epochs >= 1


def test_defaults_and_overrides(tmp_path):
    cfg = load(tmp_path, BASE + "optim:\n  lr: 0.05\n", **{"optim.weight_decay": 0.001, "aug": "uniform"})
    assert cfg.optim.lr == 0.05 and cfg.optim.weight_decay == 0.001 and cfg.aug == "uniform"
    assert cfg.optim.nesterov is True and cfg.cutout == 16


@pytest.mark.parametrize("text, pattern", [
    (BASE + "epohcs: 3\n", r"unknown key epohcs \(did you mean epochs\?\)"),
    (BASE + "optim:\n  lrr: 0.1\n", r"unknown key optim\.lrr"),
    (BASE.replace("epochs: 2", "epochs: ten"), r"epochs must be an integer, got 'ten'"),
    (BASE.replace("epochs: 2", "epochs: 2.5"), r"epochs must be an integer"),
    (BASE + "hflip: maybe\n", r"hflip must be true or false"),
    (BASE + "optim:\n  lr: '0.1'\n", r"optim\.lr must be a number, got '0\.1'"),
    (BASE + "optim:\n  lr: true\n", r"optim\.lr must be a number, got True"),
    (BASE + "epochs: true\n".replace("epochs", "cutout"), r"cutout must be an integer, got True"),
    (BASE.replace("epochs: 2", "epochs: 0"), r"epochs must be >= 1, got 0"),
    (BASE + "optim:\n  lr: -0.1\n", r"optim\.lr must be in \(0, 100\], got -0.1"),
    (BASE + "optim:\n  momentum: 1.5\n", r"optim\.momentum must be in"),
    (BASE + "optim:\n  warmup_epochs: 5\n", r"warmup_epochs \(5.0\) must be < epochs"),
    (BASE + "fill: 300\n", r"fill must be in \[0, 255\]"),
    # a value no branch of a union takes: what the field takes, not the branch pydantic tried
    (BASE + "val_size: -1\n", r"^config .*: val_size must be an integer >= 0 or a number in \(0, 1\), got -1$"),
    (BASE + "val_size: 1.5\n", r"val_size must be an integer >= 0 or a number in \(0, 1\), got 1.5$"),
    (BASE + "optim: 3\n", r"optim must be a mapping"),
    (BASE.replace("model: wrn10_1", "model: vgg"), r"model 'vgg' is unknown"),
    (BASE.replace("dataset: fashion_mnist", "dataset: mnist"), r"dataset 'mnist' is unknown"),
    (BASE + "aug: autoaug\n", r"aug: unknown aug 'autoaug'"),
    (BASE + "aug: /nonexistent/policy.json\n", r"aug: policy file /nonexistent/policy.json does not exist"),
    ("model: wrn10_1\n", r"missing required key dataset"),
    (BASE + "optim:\n  lr: [0.1\n", r"not valid YAML at line"),
    ("- a\n- b\n", r"must hold a mapping"),
])
def test_bad_configs_give_one_line_errors_naming_the_key(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern) as e:
        load(tmp_path, text)
    assert "\n" not in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        C.load(TrainConfig, tmp_path / "nope.yaml")


def test_config_hash_is_stable_and_content_based(tmp_path):
    a = load(tmp_path, BASE)
    b = load(tmp_path, BASE)
    c = load(tmp_path, BASE, epochs=3)
    assert C.config_hash(a) == C.config_hash(b) != C.config_hash(c)


def test_every_shipped_search_config_loads():
    import glob

    from awsaa.config import SearchConfig
    from awsaa.search.registry import AGENTS

    files = sorted(glob.glob("configs/search/*.yaml"))
    assert len(files) >= 3
    for f in files:
        cfg = C.load(SearchConfig, f)
        assert cfg.loops >= 1 and cfg.agent in AGENTS
        # the paper's config keeps the paper's agent and result rule
        if f.endswith("wrn28_10_cifar100.yaml"):
            assert cfg.agent == "ppo" and cfg.result in ("auto", "best_loop")


@pytest.mark.parametrize("text, value", [("5e-4", 5e-4), ("1E-3", 1e-3), ("+2e1", 20.0), ("1.5e-2", 0.015),
                                         ("0.0005", 5e-4), ("1_000", 1000)])
def test_yaml_reads_scientific_notation_as_numbers(tmp_path, text, value):
    """YAML 1.2 numbers: PyYAML alone (YAML 1.1) keeps '5e-4' a string and the config refuses it."""
    cfg = load(tmp_path, BASE + f"optim:\n  grad_clip: {text}\n")
    assert cfg.optim.grad_clip == pytest.approx(value)


def test_yaml_keeps_strings_that_only_look_like_numbers():
    assert C.parse_yaml("x: -1.5e-2", "t") == {"x": -0.015}
    data = C.parse_yaml("a: e5\nb: 1e\nc: '5e-4'\nd: 5e-4x\n", "t")
    assert data == {"a": "e5", "b": "1e", "c": "5e-4", "d": "5e-4x"}


def test_yaml_refuses_duplicate_keys_at_any_depth():
    with pytest.raises(ConfigError, match=r"line 3.*duplicate key 'lr'"):
        C.parse_yaml("optim:\n  lr: 0.1\n  lr: 0.2\n", "t")
    assert C.parse_yaml("a: {x: 1}\nb: {x: 1}\n", "t") == {"a": {"x": 1}, "b": {"x": 1}}  # same key, two maps


def test_yaml_aliases_within_the_bound_still_work():
    data = C.parse_yaml("base: &b {lr: 0.1}\nother: *b\n", "t")
    assert data["other"] == {"lr": 0.1}
    with pytest.raises(ConfigError, match="expands to more than"):
        C.parse_yaml("a: &a [" + ", ".join(["x"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 101) + "]\n", "t")


def test_a_self_referencing_yaml_is_refused():
    with pytest.raises(ConfigError, match="expands to more than"):
        C.parse_yaml("a: &a [1, *a]\n", "t")


def test_a_search_whose_fine_tunes_would_run_at_lr_0_is_refused():
    base = {"model": "wrn10_1", "dataset": "fashion_mnist", "pretrain": {"epochs": 4, "optim": {"final_lr": 0.0}}}
    with pytest.raises(ConfigError, match="learning rate 0"):
        C.from_dict(C.SearchConfig, base)
    for fix in ({"pretrain": {"epochs": 4, "stop_epoch": 3, "optim": {"final_lr": 0.0}}},
                {"pretrain": {"epochs": 4, "optim": {"final_lr": 0.001}}},
                {"finetune": {"lr": 0.01}},
                {"pretrain": {"epochs": 4, "optim": {"schedule": "multistep", "milestones": [2], "final_lr": 0.0}}}):
        C.from_dict(C.SearchConfig, {**base, **fix})


@pytest.mark.parametrize("cls, name", [(SearchConfig, "search"), (TrainConfig, "train")])
def test_the_shipped_json_schemas_are_current_and_describe_the_configs(cls, name):
    """configs/schema/*.schema.json is what the config classes say (`make schemas` rewrites
    them); the schema refuses unknown keys and states the constraints."""
    import json
    from pathlib import Path

    from awsaa.config import json_schema

    shipped = json.loads((Path(__file__).parents[1] / "configs" / "schema" / f"{name}.schema.json").read_text())
    assert shipped == json_schema(cls), "run `make schemas`"
    assert shipped["additionalProperties"] is False
    optim = shipped["$defs"]["OptimConfig"]["properties"]
    assert optim["lr"]["exclusiveMinimum"] == 0 and optim["momentum"]["exclusiveMaximum"] == 1


def test_print_config_shows_the_effective_config(capsys):
    import yaml

    from awsaa.cli.search import main

    assert main(["-c", "configs/search/quick_fmnist.yaml", "--loops", "3", "--set", "agent_config.es_lr=0.5",
                 "--print-config"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["loops"] == 3 and shown["agent_config"]["es_lr"] == 0.5 and shown["model"] == "wrn10_1"
    assert C.from_dict(SearchConfig, shown) == C.load(SearchConfig, "configs/search/quick_fmnist.yaml",
                                                      {"loops": 3, "agent_config.es_lr": 0.5})


@pytest.mark.parametrize("cls", [TrainConfig, SearchConfig])
def test_every_config_field_has_a_description(cls):
    """Every field of the config and of every section it nests says what it is (the JSON
    schema's ``description``: editors show it, ``--print-schema`` prints it)."""
    schema = C.json_schema(cls)
    sections = {cls.__name__: schema, **schema["$defs"]}
    assert "OptimConfig" in sections and "DataConfig" in sections
    missing = [f"{section}.{name}" for section, s in sections.items() for name, prop in s["properties"].items()
               if not str(prop.get("description", "")).strip()]
    assert not missing, f"fields without a description: {', '.join(missing)}"
    assert sum(len(s["properties"]) for s in sections.values()) >= 30
