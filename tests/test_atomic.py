import threading

import pytest

from st_search_r3.atomic import staged_file, staged_folder, write_file


def test_a_failed_write_leaves_the_old_folder_and_no_staging(tmp_path):
    target = tmp_path / "model"
    with staged_folder(target) as staging:
        (staging / "weights").write_text("v1")
    with pytest.raises(RuntimeError):
        with staged_folder(target) as staging:
            (staging / "weights").write_text("half")
            raise RuntimeError("crash")
    assert (target / "weights").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_concurrent_writers_never_delete_each_others_staging(tmp_path):
    target, errors = tmp_path / "model", []
    barrier = threading.Barrier(4)

    def writer(n):
        try:
            with staged_folder(target) as staging:
                barrier.wait(timeout=10)  # every writer is staging at the same time
                (staging / "weights").write_text(f"v{n}")
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (target / "weights").read_text() in {"v0", "v1", "v2", "v3"}
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_staged_file_is_whole_or_the_old_one(tmp_path):
    target = tmp_path / "cache.json"
    write_file(target, "old")
    with pytest.raises(RuntimeError):
        with staged_file(target) as staging:
            staging.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["cache.json"]
    with staged_file(target) as staging:
        staging.write_text("new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["cache.json"]


def test_without_replace_the_first_finished_folder_stays(tmp_path):
    target = tmp_path / "base"
    with staged_folder(target, replace=False) as first, staged_folder(target, replace=False) as second:
        (first / "config.json").write_text("first")
        (second / "config.json").write_text("second")
    # The inner block (second) finished first and stays; the first writer's folder is dropped.
    assert (target / "config.json").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["base"]
