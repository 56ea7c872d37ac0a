"""Datasets of the plugin's own tasks."""
