"""What every route stands on: settings, auth, request dependencies, errors, API schemas, the audit
log, metrics and the request guards; the health and user routes."""
