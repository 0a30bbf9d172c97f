"""What tox -e release-smoke runs on the release lines before 34: the
functional scenarios of tests/functional/release_smoke.txt (each names a
test that exists, and every guard has one: an anti-affinity race, a late
migration failure, a restart recovery, the identity refusal) and Nova's
tests of the hook points (tox.ini [nova] smoke_modules, part of
test_modules)."""

import ast
import configparser
import pathlib

import testtools

ROOT = pathlib.Path(__file__).resolve().parents[2]
SMOKE_LIST = ROOT / 'tests' / 'functional' / 'release_smoke.txt'
GUARD_FOLDERS = ('anti_affinity', 'migration_outcome', 'host_identity',
                 'convergence')


def _test_ids():
    return [line.strip() for line in SMOKE_LIST.read_text().splitlines()
            if line.strip()]


def _defined_tests(module_path):
    """{class name: set of method names} defined in the module, with the
    methods its classes inherit from classes of the same module."""
    tree = ast.parse(module_path.read_text())
    classes = {node.name: node for node in tree.body
               if isinstance(node, ast.ClassDef)}

    def methods(name):
        node = classes.get(name)
        if node is None:
            return set()
        found = {item.name for item in node.body
                 if isinstance(item, ast.FunctionDef)}
        for base in node.bases:
            if isinstance(base, ast.Name):
                found |= methods(base.id)
        return found

    return {name: methods(name) for name in classes}


class ReleaseSmokeListTestCase(testtools.TestCase):

    def test_every_test_exists(self):
        for test_id in _test_ids():
            *module, class_name, method = test_id.split('.')
            path = ROOT.joinpath(*module).with_suffix('.py')
            self.assertTrue(path.is_file(), test_id)
            self.assertIn(method, _defined_tests(path).get(class_name, ()),
                          test_id)

    def test_every_guard_has_a_scenario(self):
        folders = {test_id.split('.')[2] for test_id in _test_ids()}
        for guard in GUARD_FOLDERS:
            self.assertIn(guard, folders)

    def test_the_issues_scenarios(self):
        modules = {'.'.join(test_id.split('.')[2:4])
                   for test_id in _test_ids()}
        for module in ('anti_affinity.test_late_check',
                       'migration_outcome.test_late_failure',
                       'migration_outcome.test_restart',
                       'host_identity.test_ha_backup'):
            self.assertIn(module, modules)


class NovaSmokeModulesTestCase(testtools.TestCase):

    def test_part_of_the_nova_test_list(self):
        tox = configparser.ConfigParser(interpolation=None)
        tox.read(ROOT / 'tox.ini')
        smoke = tox['nova']['smoke_modules'].split()
        self.assertTrue(smoke)
        self.assertEqual([], sorted(set(smoke) -
                                    set(tox['nova']['test_modules'].split())))
