"""What a worker delivers for a finished attempt when the broker may be removing its folder."""
from __future__ import annotations

import shutil
from pathlib import Path

from farm.worker_outbox import success_delivery


def test_a_finished_attempt_lists_its_files_and_not_temporaries(tmp_path):
    (tmp_path / "000.png").write_bytes(b"x" * 5)
    (tmp_path / "transforms.json").write_text("{}")
    (tmp_path / ".000.png.part").write_bytes(b"half")
    delivery = success_delivery((1, 2), {"views": 1}, tmp_path, (str(tmp_path.parent), tmp_path.name), stream=True)
    assert delivery["msg"]["files"] == [{"name": "000.png", "size": 5}, {"name": "transforms.json", "size": 2}]
    assert delivery["stream"] == [("000.png", str(tmp_path / "000.png")),
                                  ("transforms.json", str(tmp_path / "transforms.json"))]


def test_a_folder_the_broker_removes_while_it_is_listed_delivers_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "attempts" / "7"
    folder.mkdir(parents=True)
    (folder / "000.png").write_bytes(b"x")
    listing = Path.iterdir

    def removed_first(path):  # the broker's sweep wins the race: the folder goes as it is listed
        shutil.rmtree(folder)
        return listing(path)

    monkeypatch.setattr(Path, "iterdir", removed_first)
    delivery = success_delivery((1, 7), None, folder, (str(tmp_path), "attempts/7"), stream=False)
    assert delivery["msg"]["files"] == [] and delivery["msg"]["ok"]
