"""`localcloud.core.botocore_data`: botocore's data files parsed once per process, its service models not."""

from __future__ import annotations

import botocore.session

from localcloud.core import botocore_data


def loader() -> botocore.loaders.Loader:
    # A new botocore session each time, as moto's mock_aws and each test's clients make them.
    return botocore.session.get_session().get_component("data_loader")


def test_the_endpoints_are_parsed_once_for_every_session() -> None:
    botocore_data.share_parsed_files()
    assert loader().load_data("endpoints") is loader().load_data("endpoints")


def test_a_service_model_edited_in_one_session_is_not_seen_by_another() -> None:
    botocore_data.share_parsed_files()
    # What botocore does to S3's models in the first session that calls GetObject (and what sharing the
    # models broke: the local cloud identifies S3 requests from the unedited model).
    edited = loader().load_service_model("s3", "service-2")
    edited["operations"]["GetObject"]["http"]["requestUri"] = "/{Key+}"
    fresh = loader().load_service_model("s3", "service-2")
    assert fresh["operations"]["GetObject"]["http"]["requestUri"] == "/{Bucket}/{Key+}"


def test_sharing_twice_wraps_the_loader_once() -> None:
    botocore_data.share_parsed_files()
    shared = botocore.loaders.JSONFileLoader.load_file
    botocore_data.share_parsed_files()
    assert botocore.loaders.JSONFileLoader.load_file is shared
