"""Tools support staff run on a finished run: ``explain`` (why a member has these points) and
``repro`` (replay one stage and compare every output). They read the run record and the staging
database; they never change an archived run.
"""
