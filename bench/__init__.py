"""Courier's benchmark: batched workers against a naive pipeline. See README."""
