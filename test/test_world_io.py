"""Map and obstacle files (world_io.py) and the CLI's --map and --obstacles."""

import json
import math
import re

import numpy as np
from PIL import Image
import pytest

from reachability_ros.cli import main
from reachability_ros.core.errors import ConfigError
from reachability_ros.world_io import load_map, load_obstacles

MAP_YAML = ("image: {image}\nresolution: {res}\norigin: {origin}\nnegate: {negate}\n"
            "occupied_thresh: 0.65\nfree_thresh: 0.196\n{extra}")


def write_map(tmp_path, pixels, mode="L", name="map.pgm", res="0.05", origin="[0.5, -1.0, 0.0]",
              negate=0, extra=""):
    Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode).save(tmp_path / name)
    path = tmp_path / "map.yaml"
    path.write_text(MAP_YAML.format(image=name, res=res, origin=origin, negate=negate,
                                    extra=extra))
    return path


def expected_trinary(shade, negate=False, occupied=0.65, free=0.196):
    """map_server's trinary rule, written here: occupancy from the shade, thresholds."""
    occ = shade if negate else 1.0 - shade
    return np.where(occ > occupied, 100, np.where(occ < free, 0, -1))


def test_a_pgm_reads_as_map_server_reads_it(tmp_path):
    row = [0, 50, 128, 205, 254, 255]
    pixels = np.array([row, row[::-1]])
    grid = load_map(write_map(tmp_path, pixels))
    # the image's top row is the map's last row (y up)
    assert grid.values.tolist() == expected_trinary(pixels[::-1] / 255.0).tolist()
    assert grid.values[1].tolist() == [100, 100, -1, -1, 0, 0]
    assert grid.resolution_m == 0.05 and grid.origin == (0.5, -1.0, 0.0)
    negated = load_map(write_map(tmp_path, pixels, negate=1))
    assert negated.values.tolist() == expected_trinary(pixels[::-1] / 255.0, True).tolist()


def test_png_colour_alpha_scale_and_raw(tmp_path):
    rgba = np.zeros((1, 4, 4), np.uint8)
    rgba[0, :, 3] = 255
    rgba[0, 0, :3] = (255, 255, 255)  # white: free
    rgba[0, 1, :3] = (255, 0, 0)      # colour mean 85: occupancy 0.67 > 0.65
    rgba[0, 2, :3] = (200, 200, 200)  # colour occupancy 0.216: 3 in scale
    rgba[0, 3] = (255, 255, 255, 0)   # transparent
    path = write_map(tmp_path, rgba, "RGBA", "map.png")
    trinary = load_map(path).values[0].tolist()
    # trinary averages the opacity in (map_server): red (1, 0, 0, 1) is half occupied,
    # the grey 0.16 (free), the transparent white 0.25: unknown
    assert trinary == [0, -1, 0, -1]
    scale = load_map(write_map(tmp_path, rgba, "RGBA", "map.png", extra="mode: scale\n"))
    between = round((1 - 200 / 255 - 0.196) / (0.65 - 0.196) * 100)
    assert scale.values[0].tolist() == [0, 100, between, -1]
    gray = np.array([[0, 42, 100, 101, 255]])
    raw = load_map(write_map(tmp_path, gray, extra="mode: raw\n"))
    assert raw.values[0].tolist() == [0, 42, 100, -1, -1]


@pytest.mark.parametrize("change, match", [
    ({"image": "missing.pgm"}, "not found"),
    ({"image": "''"}, "'image' must name"),
    ({"res": "fine"}, "'resolution' must be a finite number"),
    ({"res": "-0.05"}, "'resolution' must be positive"),
    ({"origin": "[0.0, 1.0]"}, "'origin' must be 3 numbers"),
    ({"origin": "[0.0, 1.0, yaw]"}, "'origin' must be 3 numbers"),
    ({"negate": "2"}, "'negate' must be 0 or 1"),
    ({"extra": "mode: fancy\n"}, "'mode' must be one of"),
])
def test_a_bad_map_is_one_clear_error(tmp_path, change, match):
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "map.pgm")
    fields = {"image": "map.pgm", "res": "0.05", "origin": "[0, 0, 0]", "negate": 0,
              "extra": ""}
    fields.update(change)
    (tmp_path / "map.yaml").write_text(MAP_YAML.format(**fields))
    with pytest.raises(ConfigError, match=match):
        load_map(tmp_path / "map.yaml")


def test_a_corrupt_image_or_yaml_is_one_clear_error(tmp_path):
    (tmp_path / "map.pgm").write_bytes(b"P5\n10 10\n255\n\x00\x01")  # truncated
    (tmp_path / "map.yaml").write_text(MAP_YAML.format(image="map.pgm", res=0.05,
                                                       origin="[0, 0, 0]", negate=0, extra=""))
    with pytest.raises(ConfigError, match="cannot read map image"):
        load_map(tmp_path / "map.yaml")
    (tmp_path / "bad.yaml").write_text("image: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_map(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_map(tmp_path / "list.yaml")
    with pytest.raises(ConfigError, match="missing 'free_thresh'"):
        (tmp_path / "m.yaml").write_text("image: map.pgm\nresolution: 0.05\n"
                                         "origin: [0, 0, 0]\nnegate: 0\noccupied_thresh: 0.6\n")
        load_map(tmp_path / "m.yaml")


def test_obstacles_load_and_refuse_bad_boxes(tmp_path):
    good = tmp_path / "obstacles.yaml"
    good.write_text("frame_id: /map\nobstacles:\n"
                    "  - {name: table, center: [1.0, 0.5, 0.35], size: [0.8, 0.6, 0.05], "
                    "yaw: 0.3}\n  - {center: [2, 0, 0.1], size: [0.2, 0.2, 0.2]}\n")
    boxes = load_obstacles(good)
    assert boxes.names == ("table", "box1") and boxes.frame_id == "map"
    assert boxes.yaw.tolist() == [0.3, 0.0] and boxes.size[0].tolist() == [0.8, 0.6, 0.05]
    for text, match in (
            ("obstacles:\n  - {center: [0, 0, 0], size: [1, -1, 1]}\n", "size must be positive"),
            ("obstacles:\n  - {center: [0, .nan, 0], size: [1, 1, 1]}\n", "non-finite"),
            ("obstacles:\n  - {center: [0, 0, 0], size: [1, 1, 1], yaw: .nan}\n", "yaw"),
            ("boxes: []\n", "unknown keys"),
            ("frame_id: map\n", "missing 'obstacles'"),
            ("obstacles: {center: [0, 0, 0]}\n", "must be a list"),
            ("obstacles:\n  - {name: leg, center: [0, 0, 0]}\n", "'leg'.*missing 'size'")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_obstacles(bad)


GRASP = ["--position", "1.0", "0.5", "0.1", "--quat", "1", "0", "0", "0"]


@pytest.fixture
def world_files(tmp_path):
    pixels = np.full((60, 60), 254, np.uint8)
    pixels[:, 50:] = 0  # a wall at x >= 0.0 + 50 * 0.025 = 1.25
    path = write_map(tmp_path, pixels, res="0.025", origin="[0.0, -0.5, 0.0]")
    obstacles = tmp_path / "obstacles.yaml"
    obstacles.write_text("obstacles:\n  - {name: bin, center: [0.6, 0.9, 0.1], "
                         "size: [0.2, 0.2, 0.2]}\n")
    return path, obstacles


def test_propose_with_a_map_and_obstacles(world_files, capsys):
    path, obstacles = world_files
    rc = main(["propose", *GRASP, "--map", str(path), "--obstacles", str(obstacles), "--json",
               "--sampler", "grid", "--model", "", "--top-k", "3"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["ok"] and out["funnel"]["base_collision"] > 0
    for c in out["candidates"]:
        assert 0.0 <= c["clearance_m"] <= 0.2 and "clearance" in c["terms"]
        # the footprint (r = 0.145 m) stays 1 cm off the wall at x = 1.25 m
        assert c["base"][0] <= 1.25 - 0.145 - 0.01 + 1e-9


@pytest.mark.parametrize("bad, match", [
    ("res: fine", "'resolution' must be a finite number"),
    ("origin: [1, 2]", "'origin' must be 3 numbers"),
    ("image: gone.pgm", "not found"),
])
def test_a_bad_map_on_the_command_line_is_exit_code_2_and_one_line(tmp_path, bad, match,
                                                                   capsys):
    key, value = bad.split(": ")
    fields = {"image": "map.pgm", "res": "0.05", "origin": "[0, 0, 0]", "negate": 0,
              "extra": ""}
    fields[key] = value
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "map.pgm")
    (tmp_path / "map.yaml").write_text(MAP_YAML.format(**fields))
    rc = main(["propose", *GRASP, "--map", str(tmp_path / "map.yaml"), "--sampler", "grid",
               "--model", ""])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: ") and len(
        [line for line in err if line.startswith("error")]) == 1
    assert "Traceback" not in "\n".join(err)
    assert re.search(match, err[-1]), err[-1]


def test_bad_obstacles_on_the_command_line_are_exit_code_2(tmp_path, capsys):
    bad = tmp_path / "obstacles.yaml"
    bad.write_text("obstacles:\n  - {center: [0, 0, 0], size: [1, -1, 1]}\n")
    rc = main(["propose", *GRASP, "--obstacles", str(bad), "--json", "--sampler", "grid",
               "--model", ""])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert rc == 2 and out["ok"] is False and out["error"] == "config"
    assert "size must be positive" in out["reason"] and "Traceback" not in captured.err
    rc = main(["propose-batch", "--input", "-", "--output", "-", "--obstacles", str(bad)])
    assert rc == 2 and "size must be positive" in capsys.readouterr().err


def test_propose_batch_uses_the_world(world_files, tmp_path, capsys):
    path, obstacles = world_files
    requests = tmp_path / "in.jsonl"
    requests.write_text(json.dumps({"id": "g1", "position": [1.0, 0.5, 0.1],
                                    "orientation": [1, 0, 0, 0]}) + "\n")
    out = tmp_path / "out.jsonl"
    rc = main(["propose-batch", "--input", str(requests), "--output", str(out), "--map",
               str(path), "--obstacles", str(obstacles), "--sampler", "grid", "--model", ""])
    rec = json.loads(out.read_text())
    assert rc == 0 and rec["id"] == "g1" and rec["ok"]
    assert "base_collision" in rec["funnel"] and "clearance_m" in rec["candidates"][0]
    assert math.isfinite(rec["candidates"][0]["clearance_m"])


def test_a_map_is_found_like_a_config_file_and_its_image_next_to_it(tmp_path, monkeypatch):
    """A relative map path is looked up in the working directory, then in the package
    (core/paths.resolve_data_path), and its image next to the YAML that was found (it was
    looked for under the working directory, where the packaged example map is not)."""
    monkeypatch.chdir(tmp_path)
    grid = load_map("config/examples/room.yaml")
    assert grid.shape == (60, 80) and (grid.values == 100).any()
    mine = tmp_path / "config" / "examples"  # the user's own file of that name wins
    mine.mkdir(parents=True)
    write_map(mine, np.zeros((4, 5)), name="room.pgm").rename(mine / "room.yaml")
    assert load_map("config/examples/room.yaml").shape == (4, 5)


@pytest.mark.parametrize("flag, noun", [("--map", "map file"),
                                        ("--obstacles", "obstacles file")])
def test_a_missing_world_file_is_named_as_typed(tmp_path, monkeypatch, capsys, flag, noun):
    monkeypatch.chdir(tmp_path)
    rc = main(["propose", *GRASP, flag, "nothere.yaml", "--sampler", "grid", "--model", ""])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1] == (f"error: {noun} 'nothere.yaml' not found (looked at "
                                   f"{tmp_path / 'nothere.yaml'})")
