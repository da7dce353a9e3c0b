"""Stack layer: composes the sections into the platform config, loads stack files and holds the
checks that span sections.
"""
