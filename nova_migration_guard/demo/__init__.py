"""``nova-migration-guard demo``: each seed scenario on the embedded cloud,
once with the plugin disabled (stock Nova) and once with its guard enabled.

``scenarios`` says what each scenario does and how to read its outcome from
the cloud; ``runner`` runs them and prints the table.
"""
