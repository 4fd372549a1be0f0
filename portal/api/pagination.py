"""Keyset pagination: stable under inserts and no COUNT(*) of large tables on any page."""

from rest_framework.pagination import CursorPagination


class KeysetPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_ordering(self, request, queryset, view):
        # A client's ?ordering= (OrderingFilter) is honoured; ties break on id so pages never
        # skip or repeat rows.
        ordering = super().get_ordering(request, queryset, view)
        if not any(f.lstrip("-") in ("id", "pk") for f in ordering):
            ordering = (*ordering, "-id")
        return ordering
