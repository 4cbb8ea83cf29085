"""Casbin model files and the service catalogue (R-CAT-1), shipped as package data."""

from pathlib import Path

POLICIES_DIR = Path(__file__).resolve().parent
MODEL_PATH = POLICIES_DIR / "rbac_with_domains.conf"
CATALOGUE_PATH = POLICIES_DIR / "catalogue.yaml"
ADMIN_MODEL_PATH = POLICIES_DIR / "admin.conf"
ADMIN_POLICY_PATH = POLICIES_DIR / "admin_policy.csv"
