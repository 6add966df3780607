"""What the operations' commands run on the control node at execute time: restart Orthanc and gate on its answer
(rolling back a change it does not survive), and check an upgrade took. Not operations themselves."""
