"""The vocabulary every layer shares: types, request parameters, result schema, errors, configuration, secrets."""
