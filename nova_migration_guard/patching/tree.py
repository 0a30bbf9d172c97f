"""Change a Nova tree by a patch series, all or nothing.

Every operation first works on a private copy of the files the series
touches (the stage), with GNU patch and no fuzz, so a series that does not
fit leaves Nova untouched.  Only a stage that fully succeeded is written
back, file by file with os.replace, and a failure while writing restores
what was already written.  A journal of the original bytes, kept in the
tree while writing, lets the next run roll back a change that was killed
half way.  Reverting an applied series gives back the original bytes
because the patches apply without fuzz.

An applied series is stamped (STAMP, inside the nova package) with the
Nova version it was applied to and a digest of every file it created.
Upgrading Nova replaces the files Nova ships but leaves the stamp and the
files the series created: the stamp tells that tree apart from local edits,
and ``revert`` removes exactly those leftovers.
"""

import base64
import hashlib
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
STALE = 'applied to another Nova version'

JOURNAL = '.nova-migration-guard-journal.json'
STAMP = 'nova/.nova-migration-guard-series.json'


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


def _digest(data):
    return hashlib.sha256(data).hexdigest()


class PatchedTree(object):
    """A Nova tree (series.NovaTree: the directory holding ``nova/`` and
    its version) and the series for that version."""

    def __init__(self, nova, series):
        self.root = pathlib.Path(nova.root)
        self.version = nova.version
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

    def stamp(self):
        """What the last apply recorded: {'series', 'nova_version',
        'created': {path: sha256}}; None when the tree has no stamp."""
        path = self.root / STAMP
        if not path.is_file():
            return None
        try:
            stamp = json.loads(path.read_text())
        except ValueError:
            stamp = None
        if not (isinstance(stamp, dict) and
                isinstance(stamp.get('nova_version'), str) and
                isinstance(stamp.get('series'), str) and
                isinstance(stamp.get('created'), dict)):
            raise PatchError('nova-migration-guard: %s is not a stamp this '
                             'command wrote; remove it' % path)
        return stamp

    def stale_stamp(self):
        """The stamp of a series applied to another Nova version (Nova was
        upgraded without ``patches revert``), or None."""
        stamp = self.stamp()
        if stamp is not None and stamp['nova_version'] != self.version:
            return stamp
        return None

    def stale_reason(self, stamp):
        return ('series %s was applied to nova %s, but this tree is nova %s '
                '(Nova was upgraded without `patches revert` first): run '
                '`nova-migration-guard patches revert` to remove what it '
                'left, then `patches apply`'
                % (stamp['series'], stamp['nova_version'], self.version))

    def status(self):
        if (self.root / JOURNAL).exists():
            return INTERRUPTED, None
        if self.stale_stamp():
            return STALE, None
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
        stale = self.stale_stamp()
        if stale:
            raise PatchError(
                'nova-migration-guard: cannot apply series %s to %s: %s'
                % (self.series.name, self.root, self.stale_reason(stale)))
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
        stale = self.stale_stamp()
        if stale:
            return self._remove_leftovers(stale, progress)
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

    def _remove_leftovers(self, stamp, progress):
        """After a Nova upgrade: remove the files the stamped series created
        and the stamp, when what remains is a stock tree of this version
        (the series for it applies).  Files changed since are kept and
        named: they may be someone's work."""
        created = sorted(stamp['created'])
        current = _read(self.root,
                        sorted(set(self.files + created + [STAMP])))
        changed = [rel for rel in created if current[rel] is not None and
                   _digest(current[rel]) != stamp['created'][rel]]
        if changed:
            raise PatchError(
                'nova-migration-guard: cannot remove what series %s left in '
                '%s: %s changed since it was applied (remove them yourself '
                'and %s)' % (stamp['series'], self.root, ', '.join(changed),
                             STAMP))
        wanted = dict(current, **{rel: None for rel in created + [STAMP]})
        stage, failure = self._stage_with(
            wanted, [(p, False) for p in self.series.patches])
        if stage is None:
            raise PatchError(
                'nova-migration-guard: cannot remove what series %s (applied '
                'to nova %s) left in %s: without it the tree is not stock '
                'nova %s either (%s); reinstall nova'
                % (stamp['series'], stamp['nova_version'], self.root,
                   self.version, failure))
        stage.close()
        self._check_writable()
        self._commit(current, wanted)
        progress('removed the %d file(s) series %s added to nova %s from %s; '
                 'it is stock nova %s now'
                 % (len(created), stamp['series'], stamp['nova_version'],
                    self.root, self.version))
        return True

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
        changed = sum(current[f] != wanted[f] for f in self.files)
        # Stamped exactly when the whole series is applied (apply never
        # stops half way; revert leaves nothing).
        current[STAMP] = _read(self.root, [STAMP])[STAMP]
        wanted[STAMP] = None if steps[0][1] else self._new_stamp(wanted)
        self._commit(current, wanted)
        progress('%s done: %d file(s) of %s changed'
                 % (verb, changed, self.root))
        return True

    def _new_stamp(self, after):
        created = {rel: _digest(after[rel]) for rel in self.series.created}
        return json.dumps({'series': self.series.name,
                           'nova_version': self.version,
                           'created': created}, indent=1,
                          sort_keys=True).encode()

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
            for rel in current:
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
