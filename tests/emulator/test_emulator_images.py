"""Images and brands: state transitions, paid work and its rules, credits, lists, search."""

from __future__ import annotations

import time

import httpx

from airflow_provider_bloom.emulator import (
    BRAND_FAIL_MARKER,
    BRAND_LOGO_REQUIRED_MARKER,
    CONTENT_SAFETY_MARKER,
    DEFAULT_BRAND_ID,
    RATE_LIMITED_MARKER,
    SEEDED_IMAGE_IDS,
)
from airflow_provider_bloom.emulator.server import EmulatorServer

from ._helpers import completed_image, data, error, generate, wait_all

MISSING = "11111111-1111-4111-8111-111111111111"


def test_seeded_account_workspaces_and_brand(api: httpx.Client) -> None:
    assert data(api.get("/account"))["email"] == "dev@emulator.local"
    workspaces = data(api.get("/workspaces"))["workspaces"]
    assert workspaces[0] == {"id": None, "name": "Personal", "is_personal": True}
    assert all(not w["is_personal"] for w in workspaces[1:])
    brand = data(api.get(f"/brands/{DEFAULT_BRAND_ID}"))
    assert (brand["name"], brand["status"]) == ("Emulated Brand", "ready")
    library = data(api.get("/images", params={"brandSessionId": DEFAULT_BRAND_ID, "source": "scraped"}))[
        "images"
    ]
    assert {i["id"] for i in library} == set(SEEDED_IMAGE_IDS)


def test_image_goes_pending_generating_completed(api: httpx.Client, bloom_emulator: EmulatorServer) -> None:
    bloom_emulator.configure(generation_seconds=0.4, pending_fraction=0.5)
    started = generate(api, aspectRatio="16:9")
    assert started["status"] == "pending" and started["variantGroupId"] is None
    (image_id,) = started["ids"]
    first = data(api.get(f"/images/{image_id}"))
    assert first["status"] == "pending"
    assert first["imageUrl"] is None and first["width"] is None
    time.sleep(0.25)
    assert data(api.get(f"/images/{image_id}"))["status"] == "generating"
    time.sleep(0.25)
    done = data(api.get(f"/images/{image_id}"))
    assert done["status"] == "completed"
    assert (done["width"], done["height"], done["aspectRatio"]) == (2048, 1152, "16:9")
    assert done["imageUrl"] == f"{bloom_emulator.root_url}/img/{image_id}"
    assert done["actionType"] == "generation" and done["failureReason"] is None


def test_variants_share_a_group_and_cost_per_variant(api: httpx.Client) -> None:
    before = data(api.get("/credits"))["balance"]
    started = generate(api, variantCount=3, imageSize="4K")
    assert len(started["ids"]) == 3 and started["variantGroupId"]
    images = wait_all(api, started["ids"])
    assert {i["variantGroupId"] for i in images} == {started["variantGroupId"]}
    assert {(i["width"], i["height"]) for i in images} == {(4096, 4096)}
    assert data(api.get("/credits"))["balance"] == before - 3 * 2


def test_prompt_markers_fail_images(api: httpx.Client) -> None:
    unsafe = generate(api, prompt=f"something {CONTENT_SAFETY_MARKER}")["ids"]
    limited = generate(api, prompt=f"busy {RATE_LIMITED_MARKER}")["ids"]
    by_id = {i["id"]: i for i in wait_all(api, unsafe + limited)}
    assert by_id[unsafe[0]]["status"] == "failed" and by_id[unsafe[0]]["failureReason"] == "content_safety"
    assert by_id[limited[0]]["failureReason"] == "rate_limited"
    assert by_id[unsafe[0]]["imageUrl"] is None


def test_insufficient_credits_402_and_ledger(api: httpx.Client, bloom_emulator: EmulatorServer) -> None:
    bloom_emulator.set_credits(3)
    generate(api, variantCount=2)
    assert data(api.get("/credits"))["balance"] == 1
    body = error(api.post("/images/generations", json=_gen(imageSize="4K")), 402, "INSUFFICIENT_CREDITS")
    assert body["defined"] is True and body["data"]["action_url"].startswith("https://")
    assert data(api.get("/credits"))["balance"] == 1  # a refused request charges nothing
    bloom_emulator.set_credits(0, unlimited=True)
    generate(api, variantCount=5, imageSize="4K")
    assert data(api.get("/credits")) == {"balance": 0, "unlimited": True}


def test_team_workspace_has_its_own_ledger(api: httpx.Client, bloom_emulator: EmulatorServer) -> None:
    bloom_emulator.configure(team_workspaces={"ws_team_a": "Team A"}, initial_credits=7)
    assert data(api.get("/credits", params={"workspaceId": "ws_team_a"}))["balance"] == 7
    error(api.get("/credits", params={"workspaceId": "ws_nope"}), 404, "WORKSPACE_NOT_FOUND")
    brand_id = data(
        api.post("/brands", json={"url": "https://team-a.example", "workspaceId": "ws_team_a"}), 202
    )["id"]
    data(api.get(f"/brands/{brand_id}", params={"wait": "true", "timeout": 5}))
    generate(api, brandSessionId=brand_id, variantCount=2)
    assert data(api.get("/credits", params={"workspaceId": "ws_team_a"}))["balance"] == 5
    assert data(api.get("/credits"))["balance"] == 7
    listed = data(api.get("/images", params={"workspaceId": "ws_team_a", "source": "generated"}))["images"]
    assert len(listed) == 2 and {i["workspaceName"] for i in listed} == {"Team A"}
    error(
        api.post("/brands", json={"url": "https://x.example", "workspaceId": "ws_nope"}),
        404,
        "WORKSPACE_NOT_FOUND",
    )


def _gen(**fields: object) -> dict[str, object]:
    return {"prompt": "p", "brandSessionId": DEFAULT_BRAND_ID, **fields}


def test_brand_onboarding_outcomes_and_409(api: httpx.Client) -> None:
    ok = data(api.post("/brands", json={"url": "https://acme.example"}), 202)
    assert ok["status"] == "analyzing"
    failing = data(api.post("/brands", json={"url": f"https://{BRAND_FAIL_MARKER}.example"}), 202)["id"]
    logo = data(api.post("/brands", json={"url": f"https://{BRAND_LOGO_REQUIRED_MARKER}.example"}), 202)["id"]
    error(api.post("/images/generations", json=_gen(brandSessionId=ok["id"])), 409, "BRAND_NOT_READY")
    assert data(api.get(f"/brands/{ok['id']}", params={"wait": "true", "timeout": 5}))["status"] == "ready"
    failed = data(api.get(f"/brands/{failing}", params={"wait": "true", "timeout": 5}))
    assert failed["status"] == "failed" and failed["failure"]["code"] == "SCRAPE_FAILED"
    needs_logo = data(api.get(f"/brands/{logo}", params={"wait": "true", "timeout": 5}))
    assert needs_logo["status"] == "logo_required" and needs_logo["logoError"]
    error(api.post("/images/generations", json=_gen(brandSessionId=logo)), 409, "BRAND_NOT_READY")
    assert data(api.put(f"/brands/{logo}/logo", json={"logoUrl": "https://cdn.example/logo.png"}), 202)[
        "status"
    ] in (
        "analyzing",
        "ready",
    )
    fixed = data(api.get(f"/brands/{logo}", params={"wait": "true", "timeout": 5}))
    assert fixed["status"] == "ready" and fixed["logoUrl"] == "https://cdn.example/logo.png"
    assert generate(api, brandSessionId=logo)["ids"]
    error(api.post("/images/generations", json=_gen(brandSessionId=MISSING)), 422, "BRAND_NOT_FOUND")
    error(
        api.put(f"/brands/{logo}/logo", json={"logoUrl": "ftp://cdn.example/logo.png"}), 400, "INVALID_LOGO"
    )
    error(api.post("/brands", json={"url": "ftp://acme.example"}), 400, "INVALID_URL")


def test_scraped_images_appear_when_brand_is_ready(api: httpx.Client) -> None:
    brand_id = data(api.post("/brands", json={"url": "https://www.shop-front.example"}), 202)["id"]
    assert data(api.get("/images", params={"brandSessionId": brand_id}))["images"] == []
    data(api.get(f"/brands/{brand_id}", params={"wait": "true", "timeout": 5}))
    scraped = data(api.get("/images", params={"brandSessionId": brand_id}))["images"]
    assert len(scraped) == 2 and {i["source"] for i in scraped} == {"scraped"}
    assert {i["status"] for i in scraped} == {None}
    summary = next(b for b in data(api.get("/brands"))["brands"] if b["id"] == brand_id)
    assert summary["name"] == "Shop Front" and summary["imageCount"] == 2


def test_4k_needs_entitlement(api: httpx.Client, bloom_emulator: EmulatorServer) -> None:
    bloom_emulator.configure(entitled_4k=False)
    body = error(api.post("/images/generations", json=_gen(imageSize="4K")), 403, "FEATURE_NOT_ENTITLED")
    assert body["defined"] is True
    assert generate(api, imageSize="2K")["ids"]


def test_edit_resize_remove_background_vectorize(api: httpx.Client) -> None:
    source = completed_image(api, aspectRatio="4:5")
    before = data(api.get("/credits"))["balance"]
    edit = data(api.post(f"/images/{source['id']}/edit", json=_gen(prompt="bluer", imageSize="4K")), 202)
    resize = data(
        api.post(
            f"/images/{source['id']}/resize",
            json={"targetAspectRatio": "9:16", "brandSessionId": DEFAULT_BRAND_ID},
        ),
        202,
    )
    cutout = data(
        api.post(f"/images/{source['id']}/remove-background", json={"brandSessionId": DEFAULT_BRAND_ID}), 202
    )
    vector = data(
        api.post(f"/images/{source['id']}/vectorize", json={"brandSessionId": DEFAULT_BRAND_ID}), 202
    )
    ids = [edit["id"], resize["id"], cutout["id"], vector["id"]]
    assert {r["status"] for r in (edit, resize, cutout, vector)} == {"pending"}
    by_id = {i["id"]: i for i in wait_all(api, ids)}
    assert by_id[edit["id"]]["actionType"] == "edit" and by_id[edit["id"]]["aspectRatio"] == "4:5"
    assert (by_id[edit["id"]]["width"], by_id[edit["id"]]["height"]) == (3277, 4096)
    assert by_id[resize["id"]]["actionType"] == "resize" and by_id[resize["id"]]["aspectRatio"] == "9:16"
    assert (by_id[resize["id"]]["width"], by_id[resize["id"]]["height"]) == (1152, 2048)
    assert by_id[cutout["id"]]["actionType"] == "remove-background"
    assert by_id[vector["id"]]["actionType"] == "vectorize"
    # edit 4K = 2, resize of a 2K image = 1, remove-background = 1, vectorize = 1
    assert data(api.get("/credits"))["balance"] == before - 5


def test_post_processing_rules(api: httpx.Client, bloom_emulator: EmulatorServer) -> None:
    source = completed_image(api, aspectRatio="1:1")
    brand = {"brandSessionId": DEFAULT_BRAND_ID}
    error(
        api.post(f"/images/{source['id']}/resize", json={"targetAspectRatio": "1:1", **brand}),
        400,
        "SAME_ASPECT_RATIO",
    )
    vector_id = data(api.post(f"/images/{source['id']}/vectorize", json=brand), 202)["id"]
    wait_all(api, [vector_id])
    error(api.post(f"/images/{vector_id}/vectorize", json=brand), 400, "IMAGE_NOT_VECTORIZABLE")
    error(
        api.post(f"/images/{vector_id}/resize", json={"targetAspectRatio": "3:2", **brand}),
        400,
        "IMAGE_NOT_RESIZABLE",
    )
    error(
        api.post(f"/images/{vector_id}/remove-background", json=brand), 400, "IMAGE_NOT_REMOVABLE_BACKGROUND"
    )
    error(api.post(f"/images/{MISSING}/vectorize", json=brand), 404, "IMAGE_NOT_FOUND")
    error(
        api.post(f"/images/{source['id']}/vectorize", json={"brandSessionId": MISSING}),
        404,
        "SESSION_NOT_FOUND",
    )
    error(api.post(f"/images/{MISSING}/edit", json=_gen()), 404, "EDIT_SUBJECT_NOT_FOUND")
    bloom_emulator.configure(generation_seconds=30)
    pending = generate(api)["ids"][0]
    error(api.post(f"/images/{pending}/edit", json=_gen()), 400, "EDIT_SUBJECT_NOT_COMPLETED")
    error(
        api.post(f"/images/{pending}/resize", json={"targetAspectRatio": "3:2", **brand}),
        400,
        "IMAGE_NOT_COMPLETED",
    )
    error(api.post(f"/images/{pending}/remove-background", json=brand), 400, "IMAGE_NOT_COMPLETED")
    bloom_emulator.configure(vectorize_min_side=4096)
    error(api.post(f"/images/{source['id']}/vectorize", json=brand), 400, "IMAGE_TOO_SMALL")
    refs = {"referenceImageIds": [MISSING]}
    error(api.post("/images/generations", json=_gen(**refs)), 404, "REFERENCE_IMAGE_NOT_FOUND")
    too_many = {"referenceImageIds": [SEEDED_IMAGE_IDS[0]] * 11}
    error(api.post("/images/generations", json=_gen(**too_many)), 400, "REFERENCE_LIMIT_EXCEEDED")
    assert generate(api, referenceImageIds=list(SEEDED_IMAGE_IDS))["ids"]


def test_library_images_can_be_edited_without_waiting(api: httpx.Client) -> None:
    edited = data(api.post(f"/images/{SEEDED_IMAGE_IDS[0]}/edit", json=_gen(prompt="add a logo")), 202)["id"]
    (image,) = wait_all(api, [edited])
    assert image["status"] == "completed" and image["aspectRatio"] == "4:3"


def test_list_pagination_and_filters(api: httpx.Client) -> None:
    ids = generate(api, variantCount=5)["ids"] + generate(api, prompt=f"x {CONTENT_SAFETY_MARKER}")["ids"]
    wait_all(api, ids)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2, "brandSessionId": DEFAULT_BRAND_ID}
        if cursor:
            params["cursor"] = cursor
        page = data(api.get("/images", params=params))
        seen += [i["id"] for i in page["images"]]
        pages += 1
        if not page["hasMore"]:
            assert page["nextCursor"] is None
            break
        cursor = page["nextCursor"]
    assert pages == 5 and len(seen) == len(set(seen)) == 9  # 6 generated + 3 scraped, newest first
    assert set(seen[:6]) == set(ids) and seen[0] == ids[-1]
    failed = data(api.get("/images", params={"status": "failed"}))["images"]
    assert [i["id"] for i in failed] == ids[-1:]
    generated = data(api.get("/images", params={"actionType": "generation"}))["images"]
    assert {i["source"] for i in generated} == {"generated"} and len(generated) == 6
    uploaded = data(api.get("/images", params={"source": "uploaded"}))["images"]
    assert uploaded == []
    assert data(api.get("/images", params={"cursor": "not-a-cursor"}))["images"] == []
    error(api.get("/images", params={"ids": ",".join([MISSING] * 51)}), 400, "BAD_REQUEST")
    error(api.get("/images", params={"brandSessionId": MISSING}), 422, "BRAND_NOT_FOUND")


def test_delete_images_and_brands(api: httpx.Client) -> None:
    ids = generate(api, variantCount=3)["ids"]
    deleted = data(api.delete(f"/images/{ids[0]}"))
    assert deleted == {"id": ids[0], "source": "generated", "workspaceId": None, "workspaceName": "Personal"}
    error(api.delete(f"/images/{ids[0]}"), 404, "IMAGE_NOT_FOUND")
    assert data(api.delete("/images", params={"ids": ",".join([*ids, MISSING, "junk"])})) == {
        "deletedCount": 2
    }
    error(api.get(f"/images/{ids[1]}"), 404, "IMAGE_NOT_FOUND")
    brand = data(api.delete(f"/brands/{DEFAULT_BRAND_ID}"))
    assert brand["name"] == "Emulated Brand"
    error(api.delete(f"/brands/{DEFAULT_BRAND_ID}"), 404, "BRAND_NOT_FOUND")
    error(api.get(f"/images/{SEEDED_IMAGE_IDS[0]}"), 404, "IMAGE_NOT_FOUND")  # its library went with it


def test_search_ranks_library_images(api: httpx.Client) -> None:
    body = {"brandSessionId": DEFAULT_BRAND_ID, "query": "drone in flight"}
    found = data(api.post("/images/search", json=body))
    assert found["query"] == "drone in flight"
    assert [c["id"] for c in found["candidates"]] == [SEEDED_IMAGE_IDS[0]]
    assert found["candidates"][0]["distance"] == 0.0
    loose = data(
        api.post(
            "/images/search", json={**body, "query": "a team in an office", "maxDistance": 2, "limit": 2}
        )
    )
    assert len(loose["candidates"]) == 2 and loose["hasMore"] is True
    distances = [c["distance"] for c in loose["candidates"]]
    assert distances == sorted(distances) and loose["candidates"][0]["id"] == SEEDED_IMAGE_IDS[1]
    rest = data(
        api.post(
            "/images/search",
            json={
                **body,
                "query": "a team in an office",
                "maxDistance": 2,
                "limit": 2,
                "cursor": loose["nextCursor"],
            },
        )
    )
    assert len(rest["candidates"]) == 1 and rest["hasMore"] is False
    error(api.post("/images/search", json={**body, "cursor": "garbage"}), 400, "INVALID_CURSOR")
    error(api.post("/images/search", json={**body, "cursor": loose["nextCursor"]}), 400, "INVALID_CURSOR")
    error(api.post("/images/search", json={**body, "brandSessionId": MISSING}), 422, "BRAND_NOT_FOUND")


def test_validation_errors_use_bloom_envelope(api: httpx.Client) -> None:
    body = error(api.post("/images/generations", json=_gen(prompt="x" * 2001)), 400, "BAD_REQUEST")
    assert body["defined"] is False and body["data"]["issues"][0]["path"] == ["prompt"]
    error(api.post("/images/generations", json=_gen(aspectRatio="2:1")), 400, "BAD_REQUEST")
    error(
        api.post("/images/generations", content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "BAD_REQUEST",
    )
    error(api.get("/images/not-a-uuid"), 400, "BAD_REQUEST")
    error(api.get("/brands", params={"limit": 0}), 400, "BAD_REQUEST")
    error(api.get("/brands", params={"limit": "ten"}), 400, "BAD_REQUEST")
    missing = api.get("/no-such-thing")
    assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"
    wrong = api.patch("/images")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "DELETE, GET"
    assert "detail" not in wrong.json()  # never FastAPI's default shape
