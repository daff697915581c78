# Copyright (c) vnuma.libvirt contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A guest's backup (``_run/backup.py``): its name, a file that is whole or absent whatever fails, and a
directory no other user can replace it in.

A full file system is simulated by a ``write(2)`` that takes 4096 bytes and then fails with ENOSPC, as a
small tmpfs does; mounting one needs root.  tests/integration/test_vnuma_domain_define.py runs the module
against a real full tmpfs, in a mount namespace of its own.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ansible_collections.vnuma.libvirt.plugins.module_utils._core.errors import LibvirtOperationError, SpecError
from ansible_collections.vnuma.libvirt.plugins.module_utils._run.backup import (
    NAME_MAX,
    backup_name,
    check_backup_dir,
    write_backup,
)
from ansible_collections.vnuma.libvirt.tests.support.full_disk import fill_after

# 2024-12-05 00:00:00 UTC and 42 ns.
NOW = 1733356800_000000042
XML = "<domain type='kvm'>\n" + "  <description>" + "d" * 20000 + "</description>\n</domain>\n"
# ".YYYYmmddTHHMMSS.nnnnnnnnnZ.xml"
SUFFIX_BYTES = 31


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The clock write_backup reads, set by the test: ``clock[0]`` nanoseconds."""
    now = [NOW]
    monkeypatch.setattr(time, "time_ns", lambda: now[0])
    yield now


@pytest.fixture
def local_time_not_utc() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def no_hard_links(source: str, target: str) -> None:
    """link(2) on vfat and some FUSE file systems."""
    raise OSError(errno.EPERM, os.strerror(errno.EPERM))


def names(directory: Path) -> list[str]:
    """Every name in ``directory``, the hidden ones too."""
    return sorted(os.listdir(directory))


# -- the name --------------------------------------------------------------------------------------


def test_the_name_holds_the_time_in_utc_down_to_the_nanosecond(local_time_not_utc: None) -> None:
    assert backup_name("db01", NOW) == "db01.20241205T000000.000000042Z.xml"
    assert backup_name("db01", 1733356800_100000000) == "db01.20241205T000000.100000000Z.xml"
    assert backup_name("db01", 1733356799_999999999) == "db01.20241204T235959.999999999Z.xml"


def test_a_guests_backups_sort_by_name_in_the_order_they_were_written(tmp_path: Path, clock: list[int]) -> None:
    # Within one second, across a second, a minute and a day; 42 ns used to sort after 100000000 ns.
    times = [NOW - 10**9, NOW - 1, NOW, NOW + 958, NOW + 99_999_958, NOW + 10**9 - 43, NOW + 10**9, NOW + 86400 * 10**9]
    written = []
    for now in times:
        clock[0] = now
        written.append(os.path.basename(write_backup(str(tmp_path), "db01", "<domain/>")))
    assert sorted(written) == written == names(tmp_path)


def test_the_clock_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The seconds and the nanoseconds come from one reading: a second that ticks between two reads
    # cannot pair 23:59:59 with 0.000000001 of the next second.
    second = 1733356800_000000000
    reads = iter([second + 10**9 - 1, second + 10**9 + 1])
    monkeypatch.setattr(time, "time_ns", lambda: next(reads))
    path = write_backup(str(tmp_path), "db01", "<domain/>")
    assert os.path.basename(path) == "db01.20241205T000000.999999999Z.xml"


@pytest.mark.parametrize("length", [1, 100, NAME_MAX - SUFFIX_BYTES])
def test_a_name_that_fits_is_kept_whole(length: int) -> None:
    name = "g" * length
    assert backup_name(name, NOW) == f"{name}.20241205T000000.000000042Z.xml"
    assert len(backup_name(name, NOW).encode()) <= NAME_MAX


@pytest.mark.parametrize(
    "name",
    [
        "g" * (NAME_MAX - SUFFIX_BYTES + 1),
        "x" * 240,  # libvirt takes it: the backup used to fail with ENAMETOOLONG
        "x" * 1000,
        "é" * 120,  # 240 bytes of 2-byte characters
        "a" + "é" * 120,  # the cut falls in the middle of a character
        "€" * 80,  # 3-byte characters
        "ab" + "€" * 80,
        "𝄞" * 60,  # 4-byte characters
        "a" + "𝄞" * 60,
        "ab" + "𝄞" * 60,
        "abc" + "𝄞" * 60,
    ],
)
def test_a_long_name_is_cut_at_a_character_and_told_apart_by_a_hash(name: str, tmp_path: Path) -> None:
    file_name = backup_name(name, NOW)
    encoded = file_name.encode("utf-8")
    assert len(encoded) <= NAME_MAX
    assert len(encoded) > NAME_MAX - 4  # cut no shorter than a character needs
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]
    assert file_name.endswith(f"-{digest}.20241205T000000.000000042Z.xml")
    kept = file_name[: -len(f"-{digest}.20241205T000000.000000042Z.xml")]
    assert kept and name.startswith(kept)
    # The file system takes it: the backup is written.
    path = write_backup(str(tmp_path), name, XML)
    assert Path(path).read_text(encoding="utf-8") == XML


def test_two_long_names_that_differ_only_past_the_cut_get_files_of_their_own(tmp_path: Path) -> None:
    first, second = "x" * 300 + "-a", "x" * 300 + "-b"
    assert backup_name(first, NOW) != backup_name(second, NOW)
    paths = {write_backup(str(tmp_path), name, f"<domain>{name}</domain>") for name in (first, second)}
    assert len(paths) == 2 and len(names(tmp_path)) == 2


# -- whole or absent -------------------------------------------------------------------------------


def test_the_file_is_written_whole_and_flushed_before_it_has_its_name(
    tmp_path: Path, clock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    final = tmp_path / backup_name("db01", NOW)
    synced: list[tuple[str, bool]] = []
    real_fsync = os.fsync

    def fsync(handle: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(handle).st_mode) else "file"
        synced.append((kind, final.exists()))
        real_fsync(handle)

    monkeypatch.setattr(os, "fsync", fsync)
    path = write_backup(str(tmp_path), "db01", XML)
    assert path == str(final) and final.read_text(encoding="utf-8") == XML
    # The file's data first, while it has no name yet; then the directory that holds its name.
    assert synced == [("file", False), ("dir", True)]
    assert names(tmp_path) == [final.name]
    assert stat.S_IMODE(final.stat().st_mode) == 0o600


def test_a_full_file_system_leaves_no_file_and_the_error_names_the_path(
    tmp_path: Path, clock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_after(monkeypatch)
    backups = tmp_path / "backups"
    backups.mkdir()
    with pytest.raises(LibvirtOperationError) as raised:
        write_backup(str(backups), "db01", XML)
    path = backups / backup_name("db01", NOW)
    assert str(raised.value) == (
        f"guest db01: cannot save the backup of its definition as {path}: [Errno 28] No space left on device; "
        "its definition was left as it was"
    )
    assert raised.value.guest == "db01"
    # Neither a truncated file with a backup's name nor the temporary file is left.
    assert names(backups) == []


def test_a_directory_created_for_a_backup_that_fails_is_named(
    tmp_path: Path, clock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def write(handle: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write)
    with pytest.raises(LibvirtOperationError) as raised:
        write_backup(str(tmp_path / "new" / "backups"), "db01", XML)
    assert str(raised.value).endswith(
        f"[Errno 28] No space left on device (the directory {tmp_path / 'new'} was created for it); "
        "its definition was left as it was"
    )
    assert names(tmp_path / "new" / "backups") == []


@pytest.mark.parametrize("failing", ["fsync", "close"])
def test_a_failed_flush_leaves_no_file(
    tmp_path: Path, clock: list[int], monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    # NFS and a failing disk report a lost write at fsync or close: the data may not be on the disk.
    real = getattr(os, failing)

    def fail(handle: int) -> None:
        if stat.S_ISREG(os.fstat(handle).st_mode):
            real(handle)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(handle)

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(LibvirtOperationError, match=r": \[Errno 5\] Input/output error; its definition was left"):
        write_backup(str(tmp_path), "db01", XML)
    assert names(tmp_path) == []


def test_a_directory_that_cannot_be_flushed_leaves_no_backup(
    tmp_path: Path, clock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def fsync(handle: int) -> None:
        if stat.S_ISDIR(os.fstat(handle).st_mode):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(handle)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(LibvirtOperationError) as raised:
        write_backup(str(tmp_path), "db01", XML)
    assert "flushing its directory to the disk: [Errno 5] Input/output error" in str(raised.value)
    assert names(tmp_path) == []


def test_a_file_system_that_cannot_flush_directories_still_takes_backups(
    tmp_path: Path, clock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def fsync(handle: int) -> None:
        if stat.S_ISDIR(os.fstat(handle).st_mode):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        real_fsync(handle)

    monkeypatch.setattr(os, "fsync", fsync)
    path = write_backup(str(tmp_path), "db01", XML)
    assert Path(path).read_text(encoding="utf-8") == XML


def test_what_cannot_be_removed_after_a_failure_is_named(
    tmp_path: Path, clock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def write(handle: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def unlink(path: str) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.raises(LibvirtOperationError) as raised:
        write_backup(str(tmp_path), "db01", XML)
    (left,) = names(tmp_path)
    assert left.startswith(".vnuma-backup-")
    assert f"; {tmp_path / left} is left behind: it could not be removed ([Errno 30] Read-only file system)" in str(
        raised.value
    )


@pytest.mark.parametrize("hard_links", [True, False])
def test_an_existing_file_is_never_replaced(
    tmp_path: Path, clock: list[int], monkeypatch: pytest.MonkeyPatch, hard_links: bool
) -> None:
    if not hard_links:
        monkeypatch.setattr(os, "link", no_hard_links)
    existing = tmp_path / backup_name("db01", NOW)
    existing.write_text("<domain>an earlier backup</domain>", encoding="utf-8")
    with pytest.raises(LibvirtOperationError) as raised:
        write_backup(str(tmp_path), "db01", XML)
    assert str(raised.value) == (
        f"guest db01: cannot save the backup of its definition as {existing}: a file of that name exists, "
        "and a backup never replaces one; its definition was left as it was"
    )
    assert existing.read_text(encoding="utf-8") == "<domain>an earlier backup</domain>"
    assert names(tmp_path) == [existing.name]


def test_a_file_system_without_hard_links_takes_backups(
    tmp_path: Path, clock: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "link", no_hard_links)
    path = write_backup(str(tmp_path), "db01", XML)
    assert Path(path).read_text(encoding="utf-8") == XML
    assert names(tmp_path) == [os.path.basename(path)]


def test_the_temporary_file_is_the_runs_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Created exclusively, readable by its owner only, in the backup's directory (a rename stays in one file system).
    seen: list[tuple[str, int]] = []
    real_write = os.write

    def write(handle: int, data: bytes | memoryview) -> int:
        seen.extend((name, stat.S_IMODE(os.stat(tmp_path / name).st_mode)) for name in os.listdir(tmp_path))
        return real_write(handle, data)

    monkeypatch.setattr(os, "write", write)
    write_backup(str(tmp_path), "db01", "<domain/>")
    ((name, mode),) = set(seen)
    assert name.startswith(".vnuma-backup-") and mode == 0o600


# -- the directory: checked before the run (check_backup_dir) and again at each backup -------------------------

# Another user's uid: the tests that give a directory to it need root to chown.
STRANGER = 4242
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another uid (os.chown) needs root")


@pytest.fixture
def umask_022() -> Iterator[None]:
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def refusal(path: Path | str) -> str:
    """The message ``check_backup_dir`` refuses ``path`` with."""
    with pytest.raises(SpecError) as raised:
        check_backup_dir(str(path))
    return raised.value.message


def refused_at_backup(path: Path | str) -> str:
    """The message ``write_backup`` fails with for ``path``; the backup is not written."""
    with pytest.raises(LibvirtOperationError) as raised:
        write_backup(str(path), "db01", XML)
    assert raised.value.guest == "db01"
    return str(raised.value)


def everything(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.rglob("*"))


@pytest.mark.parametrize("below", ["", "/backups", "/a/b"])
def test_a_symlink_to_nothing_is_refused_by_name_before_anything_is_written(tmp_path: Path, below: str) -> None:
    # os.path.exists follows the link: the check used to pass it, and each backup then failed with EEXIST.
    link = tmp_path / "backups"
    link.symlink_to(tmp_path / "nowhere" / "deeper")
    before = everything(tmp_path)
    message = refusal(f"{link}{below}")
    assert message.startswith(f"backup_dir '{link}{below}'")
    assert f"'{link}' is a symlink to '{tmp_path / 'nowhere' / 'deeper'}', which does not exist" in message
    assert f"is a symlink to '{tmp_path / 'nowhere' / 'deeper'}', which does not exist" in refused_at_backup(
        f"{link}{below}"
    )
    assert everything(tmp_path) == before


def test_a_symlink_to_a_directory_of_the_runs_own_is_followed(tmp_path: Path) -> None:
    (tmp_path / "disk").mkdir(mode=0o700)
    (tmp_path / "backups").symlink_to(tmp_path / "disk")
    check_backup_dir(str(tmp_path / "backups"))
    path = write_backup(str(tmp_path / "backups"), "db01", XML)
    assert os.listdir(tmp_path / "disk") == [os.path.basename(path)]


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o730, 0o703], ids=lambda mode: f"{mode:04o}")
def test_a_backup_directory_others_may_write_to_is_refused(tmp_path: Path, mode: int) -> None:
    # Sticky or not: another user could add a file whose name sorts after the guest's last backup.
    backups = tmp_path / "backups"
    backups.mkdir()
    backups.chmod(mode)
    problem = f"is not this run's own (its mode {mode:04o} lets other users write to it)"
    assert refusal(backups) == (
        f"backup_dir '{backups}' {problem}: another user could replace a backup in it before it is restored; give it "
        "to this user with no write permission for others (chown, chmod go-w), or choose another directory"
    )
    assert problem in refused_at_backup(backups)
    assert names(backups) == []


@as_root
def test_a_backup_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir(mode=0o700)
    os.chown(backups, STRANGER, STRANGER)
    problem = f"is not this run's own (it belongs to uid {STRANGER}, not to this run's uid 0)"
    assert refusal(backups).startswith(f"backup_dir '{backups}' {problem}: another user could replace a backup")
    assert problem in refused_at_backup(backups)
    assert names(backups) == []


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "to-create"])
@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757], ids=lambda mode: f"{mode:04o}")
def test_a_backup_directory_in_one_others_may_rename_it_out_of_is_refused(
    tmp_path: Path, exists: bool, mode: int
) -> None:
    # Another user could rename the backup directory away and put a directory of theirs in its place.
    shared = tmp_path / "shared"
    shared.mkdir()
    backups = shared / "backups"
    if exists:
        backups.mkdir(mode=0o700)
    shared.chmod(mode)
    before = everything(tmp_path)
    problem = (
        f"is under '{shared}', where other users can rename what it holds (its mode {mode:04o} lets other users "
        "write to it without the sticky bit)"
    )
    assert refusal(backups).startswith(f"backup_dir '{backups}' {problem}: another user could put a directory")
    assert problem in refused_at_backup(backups)
    assert everything(tmp_path) == before


@as_root
@pytest.mark.parametrize("exists", [True, False], ids=["existing", "to-create"])
def test_a_backup_directory_in_one_of_another_user_is_refused(tmp_path: Path, exists: bool) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    backups = theirs / "backups"
    if exists:
        backups.mkdir(mode=0o700)
    os.chown(theirs, STRANGER, STRANGER)
    before = everything(tmp_path)
    problem = f"is under '{theirs}', where other users can rename what it holds (it belongs to uid {STRANGER}, "
    assert refusal(backups).startswith(f"backup_dir '{backups}' {problem}neither root nor this run's uid 0)")
    assert problem in refused_at_backup(backups)
    assert everything(tmp_path) == before


def test_a_symlink_others_may_replace_is_refused(tmp_path: Path) -> None:
    # The link points at a directory of the run's own, but another user could point it elsewhere.
    (tmp_path / "disk").mkdir(mode=0o700)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "backups").symlink_to(tmp_path / "disk")
    shared.chmod(0o777)
    assert f"is under '{shared}', where other users can rename what it holds" in refusal(shared / "backups")
    # And a link of the run's own to a directory in such a place.
    (shared / "kept").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(shared / "kept")
    assert f"is under '{shared}', where other users can rename what it holds" in refusal(tmp_path / "link")


def test_a_sticky_directory_above_is_accepted(tmp_path: Path, umask_022: None) -> None:
    # As /tmp: other users may write to it, but rename only their own entries.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    check_backup_dir(str(shared / "backups"))
    path = write_backup(str(shared / "backups"), "db01", XML)
    assert Path(path).read_text(encoding="utf-8") == XML


@as_root
def test_a_directory_another_user_made_after_the_check_is_refused_at_the_backup(tmp_path: Path) -> None:
    # The check found nothing there, to be created; another user made it first in the sticky directory above.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    backups = shared / "backups"
    check_backup_dir(str(backups))
    backups.mkdir(mode=0o755)
    os.chown(backups, STRANGER, STRANGER)
    assert f"it belongs to uid {STRANGER}, not to this run's uid 0" in refused_at_backup(backups)
    assert names(backups) == []


def test_dot_dot_is_resolved_by_name_for_the_check_the_directories_made_and_the_path_returned(tmp_path: Path) -> None:
    # os.makedirs used to get the raw path and create the "stray" directory that ".." then left.
    given = f"{tmp_path}/stray/../backups"
    check_backup_dir(given)
    path = write_backup(given, "db01", XML)
    assert path == str(tmp_path / "backups" / os.path.basename(path))
    assert names(tmp_path) == ["backups"]
    # A file in the way of the path as given does not matter: only the resolved one is used.
    (tmp_path / "file").write_text("not a directory\n")
    check_backup_dir(f"{tmp_path}/file/../backups")


def test_every_directory_a_backup_makes_is_the_runs_own(tmp_path: Path, umask_022: None) -> None:
    # os.makedirs gives its mode to the last directory only: the ones above were made 0755.
    path = write_backup(str(tmp_path / "a" / "b" / "c"), "db01", XML)
    made = [tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"]
    assert [stat.S_IMODE(each.stat().st_mode) for each in made] == [0o700, 0o700, 0o700]
    assert [each.stat().st_uid for each in made] == [os.geteuid()] * 3
    assert Path(path).parent == made[-1]
