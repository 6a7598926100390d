"""The original example's own check, on the chart's containers: the producer's `add` tasks run on the
worker, and Flower lists them: in its REST API, in its Tasks tab, and its Broker tab shows the queue."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from taskqueue.app import ADD_TASK
from taskqueue.private_broker import PrivateBroker
from tests.container.release import (
    CONTAINER_TIMEOUT,
    Release,
    flower_get,
    queue_stats,
    sent_task_ids,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.container, pytest.mark.timeout(CONTAINER_TIMEOUT)]



def succeeded_adds(release: Release) -> dict[str, Any]:
    tasks = flower_get(release, "api/tasks") or {}
    return {task_id: task for task_id, task in tasks.items()
            if task.get("name") == ADD_TASK and task.get("state") == "SUCCESS"}


def test_flower_api_lists_the_producers_add_tasks_run_by_the_worker(release: Release) -> None:
    def three_seen() -> dict[str, tuple[int, Any]] | None:
        sent = sent_task_ids(release.producer)
        seen = succeeded_adds(release)
        both = {task_id: (total, seen[task_id]) for task_id, total in sent.items() if task_id in seen}
        return both if len(both) >= 3 else None

    # The producer sends one add every PRODUCER_INTERVAL (5 s in the chart's defaults).
    matched = wait_until(three_seen, timeout=60, interval=0.5,
                         what="three of the producer's adds in Flower's /api/tasks")
    workers = {task["worker"] for _, task in matched.values()}
    assert len(workers) == 1 and next(iter(workers)).startswith("celery."), workers
    for total, task in matched.values():
        assert task["result"] == str(total)  # Flower reports the result as its repr


def rows_named(page: Page, name: str) -> int:
    return page.locator("#tasks-table tbody tr", has_text=name).count()


def test_flower_tasks_tab_shows_an_ever_growing_list_of_add_tasks(release: Release, browser: Browser) -> None:
    user, password = release.render.flower_auth
    context = browser.new_context(http_credentials={"username": user, "password": password})
    try:
        page = context.new_page()
        page.goto(release.flower_url, timeout=30_000)
        # "Click on the tab called Tasks, you should see an ever-growing list of tasks called add."
        page.get_by_role("link", name="Tasks", exact=True).first.click()
        page.wait_for_url("**/tasks", timeout=30_000)
        page.locator("#tasks-table tbody tr", has_text=ADD_TASK).first.wait_for(timeout=60_000)
        first = rows_named(page, ADD_TASK)
        assert first >= 1

        def grown() -> int | None:
            page.reload()
            page.locator("#tasks-table tbody tr", has_text=ADD_TASK).first.wait_for(timeout=30_000)
            count = rows_named(page, ADD_TASK)
            return count if count > first else None

        wait_until(grown, timeout=60, interval=3, what="the Tasks tab to list more add tasks")
        assert password not in page.content()
    finally:
        context.close()


def broker_row(page: Page, queue: str) -> dict[str, str]:
    """The Broker tab's row of ``queue``: header -> cell text."""
    # Text content, not the rendered text: the stylesheet upper-cases the headers.
    headers = [cell.strip() for cell in page.locator("#queue-table thead th").all_text_contents()]
    row = page.locator(f"#queue-table tbody tr[id='{queue}']")
    if row.count() == 0:
        return {}
    return dict(zip(headers, [cell.strip() for cell in row.locator("td").all_text_contents()], strict=True))


def test_flower_broker_tab_shows_the_queue_depth_and_its_consumer(
    release: Release, browser: Browser, container_broker: PrivateBroker
) -> None:
    queue = release.render.queue
    user, password = release.render.flower_auth
    broker_user, broker_password = release.render.broker_credentials
    # Hold the depth still: the producer frozen (no publishes), the worker frozen (no consumption; its
    # consumer stays registered and its prefetched messages unacknowledged). Less than the AMQP heartbeat
    # timeout (2 x 30 s), so no connection is dropped.
    docker = release.pods.docker
    docker.run("pause", release.producer.id, release.worker.id)
    context = browser.new_context(http_credentials={"username": user, "password": password})
    try:
        from taskqueue.app import create_app
        from taskqueue.config import Settings

        added = 7
        before = queue_stats(container_broker, queue)
        url = f"amqp://{broker_user}:{broker_password}@127.0.0.1:{container_broker.port}//"
        app = create_app(Settings(broker_url=url, queue_name=queue))  # type: ignore[arg-type]
        try:
            for number in range(added):
                app.send_task(ADD_TASK, args=(number, number), ignore_result=True)
        finally:
            app.close()

        def depth(stats: dict[str, int]) -> int:
            return stats["messages_ready"] + stats["messages_unacknowledged"]

        def arrived() -> dict[str, int] | None:
            stats = queue_stats(container_broker, queue)
            return stats if depth(stats) == depth(before) + added else None

        expected = wait_until(arrived, timeout=15, interval=0.5,
                              what=f"{added} more messages in {queue} than {before}")
        assert expected["consumers"] == 1, expected

        page = context.new_page()
        page.goto(release.flower_url, timeout=30_000)
        page.get_by_role("link", name="Broker", exact=True).first.click()
        page.wait_for_url("**/broker", timeout=30_000)

        def shown() -> dict[str, str] | None:
            row = broker_row(page, queue)
            want = {"Ready": str(expected["messages_ready"]), "Consumers": "1",
                    "Unacked": str(expected["messages_unacknowledged"]),
                    "Messages": str(expected["messages_ready"] + expected["messages_unacknowledged"])}
            if row and all(row.get(key) == value for key, value in want.items()):
                return row
            page.reload()  # the management API refreshes its statistics every 5 s
            return None

        row = wait_until(shown, timeout=40, interval=2, what=f"the Broker tab to show {queue} as {expected}",
                         detail=lambda: f"row: {broker_row(page, queue)}\nFlower log (tail):\n"
                                        f"{release.flower.logs()[-2000:]}")
        assert row["Queue"] == queue
        content = page.content()
        assert broker_password not in content and password not in content
    finally:
        context.close()
        docker.run("unpause", release.producer.id, release.worker.id)
    # The frozen tasks run once the worker thaws: the depth returns to nothing ready.
    wait_until(lambda: queue_stats(container_broker, queue)["messages_ready"] == 0, timeout=60, interval=0.5,
               what=f"{queue} to drain after the worker resumed")
    assert broker_password not in release.flower.logs()
