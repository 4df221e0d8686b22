from test_bedrock_vertex import *  # noqa

def test_scratch(cloud_project, cloud_env, monkeypatch):
    r = cloud_project.runpytest("--token-budget", "--token-budget-record=once", "-p", "no:cacheprovider")
    r.assert_outcomes(passed=10)
    for n in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "VERTEX_ACCESS_TOKEN"):
        monkeypatch.delenv(n)
    import time; t=time.time()
    replay = cloud_project.runpytest_subprocess("--token-budget", "-p", "no:cacheprovider", "-x")
    print("TOOK", time.time()-t)
    print(replay.stdout.str()[-3000:])
