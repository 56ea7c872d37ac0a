"""Give a criterion fairseq's update count.

What it patches: the `train_step` of the task instance a criterion is built
with (fairseq 0.12.x `FairseqTask.train_step`, every task).

Why: fairseq's trainer passes the update number only to `task.train_step`,
never to the criterion, yet warm-ups, schedules and the seeds of random draws
must follow it exactly, also after resuming from a checkpoint (the trainer
restores the count and passes it again).

No longer needed when: fairseq's trainer calls `criterion.set_num_updates`
(fairseq calls `model.set_num_updates` since 0.10, never the criterion's)."""


class FollowsUpdateCount:
    """Mixin of criterions: `self.num_updates` is fairseq's update count,
    set before each forward of a train step (0 for a criterion built without
    a task, as unit tests build them, and in validation before any update)."""

    num_updates = 0

    def follow_update_count(self, task) -> None:
        """Wrap `task.train_step` so that it hands the update number to this
        criterion first."""
        self.num_updates = 0
        if task is None:
            return
        task_train_step = task.train_step

        def train_step(sample, model, criterion, optimizer, update_num, *args, **kwargs):
            self.set_num_updates(update_num)
            return task_train_step(sample, model, criterion, optimizer, update_num, *args, **kwargs)

        task.train_step = train_step

    def set_num_updates(self, num_updates):
        self.num_updates = num_updates
