"""Reports into CI.

In: a report and its diff against the baseline. Out: GitHub workflow annotations and job
summary, GitLab Code Quality, and the one sticky pull-request comment.
"""
