"""Security shared by every node and the client: principals, ACL and credential models, the
authorizer, TLS settings and token checks. Nothing here does I/O except reading PEM files."""
