"""pyinfra inventory that reads the Ansible inventory named by ANSIBLE_INVENTORY (INI, YAML or a directory, with
its group_vars/ and host_vars/; see the README's "Coming from Ansible"):

    ANSIBLE_INVENTORY=/etc/ansible/hosts.ini pyinfra -y inventories/from_ansible.py deploys/harden.py

The same as `pyinfra orthanc_harden.ansible_inventory.inventory ...`, in pyinfra's file form.
"""

from orthanc_harden.ansible_inventory import inventory as _ansible_inventory

# Each Ansible group becomes a module-level group, as pyinfra reads inventory files.
globals().update(_ansible_inventory())
