"""The dashboard's pages in the Django admin, in one place.

``views`` (one function per page; ``sqs_broker/admin.py`` only routes to them
and checks permissions), ``rows`` (the queue table, worked out once per
request), ``panels`` (workers, tasks and findings arranged for the templates)
and ``charts`` (SVG geometry). A worker process never imports this package.
"""
