"""The docs site's build-time parts: what MkDocs cannot read from Markdown alone.

The HTTP and event contracts are rendered for reading from what the code publishes (each
service's OpenAPI document, the committed AsyncAPI document), never copied by hand, so the
site cannot describe an API the services do not serve. `hooks` is the MkDocs entry point
(`hooks:` in `mkdocs.yml`); the rest is plain functions the tests call too.
"""
