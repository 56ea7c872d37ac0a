"""Give a criterion fairseq's update count.

fairseq's trainer passes the update number only to `task.train_step`, never
to the criterion, yet warm-ups and schedules must follow it exactly, also
after resuming from a checkpoint (the trainer restores the count and passes
it again). Wrapping the task instance's `train_step` hands that number to
the criterion before each forward, whatever the task."""


def follow_update_count(task, listener) -> None:
    """Call `listener.set_num_updates(update_num)` before every train step."""
    if task is None:  # criteria built outside a task (unit tests) stay at 0
        return
    task_train_step = task.train_step

    def train_step(sample, model, criterion, optimizer, update_num, *args, **kwargs):
        listener.set_num_updates(update_num)
        return task_train_step(sample, model, criterion, optimizer, update_num, *args, **kwargs)

    task.train_step = train_step
