"""Run configuration: strict validation with errors that name the file and the key."""

import tomllib
from pathlib import Path

import pytest

from cropsm.config import RunConfig, config_to_dict, load_config
from cropsm.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", ["tiny", "demo", "paper"])
def test_examples_validate(name):
    cfg = load_config(EXAMPLES / f"{name}.toml")
    assert isinstance(cfg, RunConfig)
    assert cfg.inputs.twin.preset == name
    assert cfg.inputs.files is None


def write(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_unknown_key_names_file_and_key(tmp_path):
    path = write(tmp_path, '[inputs.twin]\npresett = "tiny"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "inputs.twin.presett" in msg
    assert "unknown key" in msg
    assert "preset" in msg.split("allowed:")[1]


def test_unknown_section(tmp_path):
    path = write(tmp_path, '[inputs.twin]\npreset = "tiny"\n[trian]\nx = 1\n')
    with pytest.raises(ConfigError, match=r"trian: unknown key"):
        load_config(path)


def test_wrong_type_names_key(tmp_path):
    path = write(tmp_path, '[inputs.twin]\npreset = "tiny"\nseed = "zero"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "inputs.twin.seed" in str(err.value)
    assert "zero" in str(err.value)


@pytest.mark.parametrize(
    ("text", "key", "shown"),
    [
        (
            '[inputs.twin]\npreset = "tiny"\n[train]\nmax_epochs = "40"\n',
            "train.max_epochs",
            "'40'",
        ),
        ('[run]\nseed = "0"\n[inputs.twin]\npreset = "tiny"\n', "run.seed", "'0'"),
        ('[inputs.twin]\npreset = "tiny"\nseed = 1.0\n', "inputs.twin.seed", "1.0"),
        (
            '[inputs.twin]\npreset = "tiny"\n[train]\nmax_epochs = true\n',
            "train.max_epochs",
            "True",
        ),
    ],
)
def test_numbers_are_not_coerced_from_other_types(tmp_path, text, key, shown):
    """A string (or bool, or float) where an integer is expected is an error naming file and key."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: {key}: ")
    assert shown in msg
    assert "\n" not in msg


def test_strict_validation_still_reads_paths_and_lists(tmp_path):
    """Strictness keeps the TOML conversions a user expects: strings to paths, arrays to tuples,
    integers where a float is expected."""
    path = write(
        tmp_path,
        '[inputs.files]\nstations = "s.csv"\nobservations = "o.csv"\nclimate = ["c/*.nc"]\n'
        '[features]\ngroups_off = ["wind"]\n[train.grid]\nlearning_rates = [1]\n',
    )
    cfg = load_config(path)
    assert cfg.inputs.files.stations == (tmp_path / "s.csv").resolve()
    assert cfg.features.groups_off == ("wind",)
    assert list(cfg.train.grid.learning_rates) == [1.0]


def test_bad_preset_value(tmp_path):
    path = write(tmp_path, '[inputs.twin]\npreset = "huge"\n')
    with pytest.raises(ConfigError, match="inputs.twin.preset"):
        load_config(path)


def test_inputs_need_exactly_one_source(tmp_path):
    path = write(tmp_path, "[run]\nseed = 1\n[inputs]\n")
    with pytest.raises(ConfigError, match="exactly one"):
        load_config(path)


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "[inputs.twin\npreset = 'tiny'\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_file_inputs_resolved_relative_to_config(tmp_path):
    path = write(
        tmp_path,
        '[inputs.files]\nstations = "st/meta.csv"\nobservations = "st/obs.csv"\n'
        'climate = ["clim/*.nc"]\n',
    )
    cfg = load_config(path)
    assert cfg.inputs.files.stations == (tmp_path / "st" / "meta.csv").resolve()
    assert cfg.inputs.files.climate == [str((tmp_path / "clim" / "*.nc").resolve())]


def test_resolved_config_round_trips_through_toml(tmp_path):
    import tomli_w

    cfg = load_config(EXAMPLES / "tiny.toml")
    text = tomli_w.dumps(config_to_dict(cfg))
    again = RunConfig.model_validate(tomllib.loads(text))
    assert again == cfg


def test_pruning_rungs_must_increase(tmp_path):
    path = write(tmp_path, '[inputs.twin]\npreset = "tiny"\n[train]\nprune_at_epochs = [15, 5]\n')
    with pytest.raises(ConfigError, match="train.prune_at_epochs"):
        load_config(path)
    path = write(tmp_path, '[inputs.twin]\npreset = "tiny"\n[train]\nprune_keep_fraction = 0\n')
    with pytest.raises(ConfigError, match="train.prune_keep_fraction"):
        load_config(path)
    ok = load_config(write(tmp_path, '[inputs.twin]\npreset = "tiny"\n'))
    assert ok.train.prune_at_epochs == []  # exhaustive by default
    assert load_config(EXAMPLES / "paper.toml").train.prune_at_epochs == [5, 15, 40]


def test_chain_and_bootstrap_choices_are_strict(tmp_path):
    base = '[inputs.twin]\npreset = "tiny"\n[train]\n'
    assert load_config(write(tmp_path, base)).train.chain == "upper"  # the paper's default
    assert load_config(write(tmp_path, base + 'chain = "none"\n')).train.chain == "none"
    path = write(tmp_path, base + 'chain = "lower"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "train.chain" in msg and "\n" not in msg.strip()
    assert load_config(write(tmp_path, base)).train.bootstrap == "stations"
    assert load_config(write(tmp_path, base + 'bootstrap = "rows"\n')).train.bootstrap == "rows"
    with pytest.raises(ConfigError, match="train.bootstrap"):
        load_config(write(tmp_path, base + 'bootstrap = "years"\n'))


def test_anchored_output_takes_input_noise():
    from cropsm.train.config import TrainConfig

    # noise on the anchored layers' silenced bucket column says nothing about the target, and
    # its weights are zeroed after training (the same as feeding it its training value 0)
    config = TrainConfig(output="anchored", input_noise=0.1)
    assert (config.output, config.input_noise) == ("anchored", 0.1)
