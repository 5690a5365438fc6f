import os
import sys

# make tests/ helpers (oracle, fixtures) importable as plain modules
sys.path.insert(0, os.path.dirname(__file__))
