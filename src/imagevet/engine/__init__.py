"""The sync engine: operations over image stores (resolve, observe, apply, copy, a whole run)."""
