"""The embedded cloud as a stand-in for a DevStack cloud, in its own process.

``python -m tests.devstack.embedded_server STATE_DIR`` starts the embedded
cloud (Nova's API, conductor, scheduler, placement and 3 fake computes, on
the patched Nova of this virtualenv) with the anti_affinity guard configured
as README.rst says (the scheduler filter and weigher beside Nova's own;
``NMG_EMBEDDED_GUARDS`` names other guards, empty for stock Nova;
``NMG_EMBEDDED_COMPUTES`` another number of computes),
serves its compute API on a loopback port (``LoopbackComputeAPI``: a random
admin token instead of Keystone) and writes into STATE_DIR:

``clouds.yaml``
    one cloud, ``embedded``, for openstacksdk (``auth_type: admin_token``);
``ready.json``
    the cloud's name, that file, the endpoint and the image to boot;
``nova.log``
    (when it stops) what Nova's services logged.

It serves until STATE_DIR/stop appears, its parent process ends or
``NMG_EMBEDDED_MAX_SECONDS`` (default 3600) pass, then tears the cloud down.
The scenario tests reach it only through HTTP, exactly as a DevStack cloud,
and their own process never imports Nova.  ``EmbeddedCloudProcess`` starts
and stops it.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

CLOUD = 'embedded'
REPO = pathlib.Path(__file__).resolve().parents[2]


def computes():
    """How many computes (host1..hostN): NMG_EMBEDDED_COMPUTES, default 3."""
    return int(os.environ.get('NMG_EMBEDDED_COMPUTES', 3))


def guards():
    """The guards of the cloud: anti_affinity, unless NMG_EMBEDDED_GUARDS
    (comma-separated) says otherwise; empty gives stock Nova, on which the
    scenarios must fail."""
    value = os.environ.get('NMG_EMBEDDED_GUARDS', 'anti_affinity')
    return tuple(g.strip() for g in value.split(',') if g.strip())


def serve(state_dir):
    """Run the cloud until told to stop; the exit status of the process."""
    # Imported here: importing the embedded cloud applies Nova's test
    # concurrency policy (monkey patching) to this process.
    from nova_migration_guard.demo import runner
    from nova_migration_guard.lab.embedded import cloud as cloud_mod
    from nova_migration_guard.lab.embedded import http

    state = pathlib.Path(state_dir)
    stop = state / 'stop'
    max_seconds = float(os.environ.get('NMG_EMBEDDED_MAX_SECONDS', 3600))
    parent = os.getppid()

    def body(cloud):
        api = cloud.useFixture(http.LoopbackComputeAPI())
        clouds_yaml = api.clouds_yaml(str(state / 'clouds.yaml'), cloud=CLOUD)
        info = {'cloud': CLOUD, 'clouds_yaml': clouds_yaml,
                'endpoint': api.endpoint, 'image': cloud.glance.image1['id'],
                'computes': sorted(cloud.computes), 'guards': list(chosen),
                'pid': os.getpid()}
        tmp = state / 'ready.json.tmp'
        tmp.write_text(json.dumps(info))
        os.replace(tmp, state / 'ready.json')
        deadline = time.monotonic() + max_seconds
        # time.sleep lets the API's and the services' threads run, whatever
        # Nova's concurrency model (eventlet or native threads).
        while (not stop.exists() and os.getppid() == parent and
               time.monotonic() < deadline):
            time.sleep(0.2)
        # Nova's services logged into the test case's capture: keep it.
        (state / 'nova.log').write_text(cloud.stdlog.logger.output)
        return api.requests_served

    chosen = guards()
    # Configured as the README says for each guard (as the demo does).
    filters = sum((runner.GUARD_FILTERS.get(g, ()) for g in chosen), ())
    weighers = sum((runner.GUARD_WEIGHERS.get(g, ()) for g in chosen), ())
    try:
        served = cloud_mod.run_in_cloud(
            body, GUARDS=chosen, NUMBER_OF_COMPUTES=computes(),
            EXTRA_FILTERS=filters, EXTRA_WEIGHERS=weighers)
    except cloud_mod.CloudRunError as exc:
        print('embedded cloud: %s' % exc, file=sys.stderr)
        return 1
    print('embedded cloud: stopped after %d API requests' % served,
          file=sys.stderr)
    return 0


class EmbeddedCloudError(Exception):
    pass


class EmbeddedCloudProcess(object):
    """Start ``serve`` in a child process; ``info`` is its ready.json."""

    def __init__(self, state_dir, start_timeout=300):
        self.state = pathlib.Path(state_dir)
        self.start_timeout = start_timeout
        self.log_path = self.state / 'embedded-cloud.log'
        self.proc = None
        self.info = None

    def start(self):
        self.state.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        # The cloud lives as long as the tests need it, not one test's time;
        # its services' output goes to the log file.
        env.update(OS_TEST_TIMEOUT='0', OS_STDOUT_CAPTURE='0',
                   OS_STDERR_CAPTURE='0')
        env['PYTHONPATH'] = os.pathsep.join(
            [str(REPO)] + [p for p in [env.get('PYTHONPATH')] if p])
        self._log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'tests.devstack.embedded_server',
             str(self.state)], cwd=str(REPO), env=env,
            stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT)
        ready = self.state / 'ready.json'
        deadline = time.monotonic() + self.start_timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise EmbeddedCloudError(
                    'the embedded cloud exited %s before it served; its log '
                    '(%s) ends:\n%s' % (self.proc.returncode, self.log_path,
                                        self.log_tail()))
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedCloudError(
                    'the embedded cloud did not serve within %s s; its log '
                    'ends:\n%s' % (self.start_timeout, self.log_tail()))
            time.sleep(0.2)
        self.info = json.loads(ready.read_text())
        return self.info

    def log_tail(self, lines=40):
        try:
            text = self.log_path.read_text(errors='replace')
        except OSError:
            return ''
        return '\n'.join(text.splitlines()[-lines:])

    def stop(self, timeout=60):
        if self.proc is None or self.proc.poll() is not None:
            return
        (self.state / 'stop').write_text('')
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


if __name__ == '__main__':
    sys.exit(serve(sys.argv[1]))
