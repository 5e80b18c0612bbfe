"""Robot recordings (ROS 2 MCAP files) as data: write them, read them without ROS, evaluate on them.

One concept per module: the topics (`topics`), the message definitions (`schemas`),
writing (`writer`), reading with damage refused (`reader`), frames from messages
(`frames`), labels from a folder (`labels`), a recording as a dataset (`dataset`)
and recording the simulator (`record`).
"""
