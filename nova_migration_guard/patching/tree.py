"""Change a Nova tree by a patch series, all or nothing.

Every operation first works on a private copy of the files the series
touches (the stage), with GNU patch and no fuzz, so a series that does not
fit leaves Nova untouched.  Only a stage that fully succeeded is written
back, file by file with os.replace, and a failure while writing restores
what was already written.  A journal of the original bytes, kept in the
tree while writing, lets the next run roll back a change that was killed
half way.  Reverting an applied series gives back the original bytes
because the patches apply without fuzz.
"""

import base64
import json
import os
import pathlib
import subprocess
import tempfile

from nova_migration_guard.patching import PatchError

NOT_APPLIED = 'not applied'
APPLIED = 'applied'
PARTIAL = 'partially applied'
CONFLICT = 'conflicts with local changes'
INTERRUPTED = 'an interrupted apply/revert awaits rollback'

JOURNAL = '.nova-migration-guard-journal.json'


def _read(root, relpaths):
    """{path: bytes or None (absent)} for the given paths under root."""
    contents = {}
    for rel in relpaths:
        path = root / rel
        contents[rel] = path.read_bytes() if path.is_file() else None
    return contents


class _Stage(object):
    """A temporary copy of some files of a tree, where patches are tried."""

    def __init__(self, contents):
        self._tmp = tempfile.TemporaryDirectory(prefix='nmg-stage-')
        self.root = pathlib.Path(self._tmp.name)
        for rel, data in contents.items():
            if data is not None:
                path = self.root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)

    def patch(self, patch_file, reverse=False):
        """Apply one patch; the first line of patch's complaint on failure."""
        cmd = ['patch', '-p1', '--batch', '--fuzz=0', '--silent',
               '--no-backup-if-mismatch', '--reject-file=-',
               '--remove-empty-files', '-d', str(self.root),
               '-i', str(patch_file)]
        cmd.append('--reverse' if reverse else '--forward')
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except FileNotFoundError:
            raise PatchError('nova-migration-guard: the patch command is '
                             'missing (install GNU patch)')
        if proc.returncode == 0:
            return None
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        return lines[0] if lines else 'patch exited %d' % proc.returncode

    def contents(self, relpaths):
        return _read(self.root, relpaths)

    def close(self):
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PatchedTree(object):
    """A Nova tree (the directory holding ``nova/``) and one series."""

    def __init__(self, root, series):
        self.root = pathlib.Path(root)
        self.series = series
        self.files = series.files

    def _current(self):
        return _read(self.root, self.files)

    def _stage_with(self, contents, steps):
        """A stage of ``contents`` with ``steps`` [(patch, reverse)] applied,
        or (None, failure) at the first patch that does not apply."""
        stage = _Stage(contents)
        for patch_file, reverse in steps:
            failure = stage.patch(patch_file, reverse=reverse)
            if failure:
                stage.close()
                return None, '%s: %s' % (patch_file.name, failure)
        return stage, None

    def applied_count(self):
        """How many leading patches of the series the tree carries, or None
        when the tree matches no prefix of the series (local edits).

        The tree carries k patches when reverting k of them gives a
        pristine tree that the whole series applies to, and re-applying the
        k patches gives back exactly the current bytes.
        """
        current = self._current()
        patches = list(self.series.patches)
        for k in range(len(patches), -1, -1):
            undo = [(p, True) for p in reversed(patches[:k])]
            stage, _ = self._stage_with(current, undo)
            if stage is None:
                continue
            with stage:
                pristine = stage.contents(self.files)
            redo, failure = self._stage_with(
                pristine, [(p, False) for p in patches])
            if redo is None:
                continue
            redo.close()
            check, _ = self._stage_with(
                pristine, [(p, False) for p in patches[:k]])
            if check is None:
                continue
            with check:
                if check.contents(self.files) == current:
                    return k
        return None

    def status(self):
        if (self.root / JOURNAL).exists():
            return INTERRUPTED, None
        k = self.applied_count()
        total = len(self.series.patches)
        if k is None:
            return CONFLICT, None
        if k == total:
            return APPLIED, k
        if k == 0:
            return NOT_APPLIED, k
        return PARTIAL, k

    def _first_conflict(self):
        """Why the series does not apply to the tree as it is."""
        current = self._current()
        _, failure = self._stage_with(
            current, [(p, False) for p in self.series.patches])
        return failure or 'the tree matches no state of the series'

    def apply(self, progress=print):
        """Apply the missing patches; True if the tree changed."""
        self._recover(progress)
        k = self.applied_count()
        if k is None:
            raise PatchError(
                'nova-migration-guard: cannot apply series %s to %s: %s '
                '(local edits? revert them or reinstall nova)'
                % (self.series.name, self.root, self._first_conflict()))
        todo = self.series.patches[k:]
        if not todo:
            progress('series %s already applied to %s'
                     % (self.series.name, self.root))
            return False
        return self._change([(p, False) for p in todo], 'applying', progress)

    def revert(self, progress=print):
        """Revert the applied patches; True if the tree changed."""
        self._recover(progress)
        k = self.applied_count()
        if k is None:
            raise PatchError(
                'nova-migration-guard: cannot revert series %s in %s: the '
                'patched files were edited since (reinstall nova to restore '
                'it)' % (self.series.name, self.root))
        todo = list(reversed(self.series.patches[:k]))
        if not todo:
            progress('series %s is not applied to %s'
                     % (self.series.name, self.root))
            return False
        return self._change([(p, True) for p in todo], 'reverting', progress)

    def _change(self, steps, verb, progress):
        current = self._current()
        self._check_writable()
        stage = _Stage(current)
        with stage:
            for i, (patch_file, reverse) in enumerate(steps, 1):
                progress('[%d/%d] %s %s'
                         % (i, len(steps), verb, patch_file.name))
                failure = stage.patch(patch_file, reverse=reverse)
                if failure:
                    raise PatchError(
                        'nova-migration-guard: %s %s failed, nothing was '
                        'changed: %s' % (verb, patch_file.name, failure))
            wanted = stage.contents(self.files)
        self._commit(current, wanted)
        progress('%s done: %d file(s) of %s changed'
                 % (verb, sum(current[f] != wanted[f] for f in self.files),
                    self.root))
        return True

    def _check_writable(self):
        # os.replace needs the directory writable; check all before writing.
        for rel in self.files:
            directory = (self.root / rel).parent
            while not directory.exists():
                directory = directory.parent
            if not os.access(directory, os.W_OK):
                raise PatchError(
                    'nova-migration-guard: permission denied: cannot write '
                    'in %s (run as the owner of the Nova installation)'
                    % directory)

    def _commit(self, current, wanted):
        """Write the wanted contents; on any failure put back what was
        already written, so the tree is never half changed.  The journal
        covers a process killed while writing (see _recover)."""
        journal = self.root / JOURNAL
        self._write(JOURNAL, json.dumps({
            rel: None if data is None else base64.b64encode(data).decode()
            for rel, data in current.items()}).encode())
        done = []
        try:
            for rel in self.files:
                if current[rel] != wanted[rel]:
                    self._write(rel, wanted[rel])
                    done.append(rel)
        except Exception as exc:
            for rel in reversed(done):
                self._write(rel, current[rel])
            journal.unlink()
            raise PatchError('nova-migration-guard: writing %s failed (%s); '
                             'the tree was restored' % (rel, exc))
        journal.unlink()

    def _recover(self, progress):
        """Roll back a change that was killed while writing."""
        journal = self.root / JOURNAL
        if not journal.exists():
            return
        self._check_writable()
        original = json.loads(journal.read_text())
        for rel, data in original.items():
            data = None if data is None else base64.b64decode(data)
            if _read(self.root, [rel])[rel] != data:
                self._write(rel, data)
        journal.unlink()
        progress('rolled back an interrupted apply/revert in %s' % self.root)

    def _write(self, rel, data):
        path = self.root / rel
        if data is None:
            if path.exists():
                path.unlink()
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
        tmp = path.with_name('.%s.nmg-tmp' % path.name)
        tmp.write_bytes(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
