# Sphinx configuration of the release notes (reno).
extensions = ['reno.sphinxext']
project = 'nova-migration-guard Release Notes'
master_doc = 'index'
